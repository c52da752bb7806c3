//! Errors of the encoders: each names the file, tensor, shape or input that is wrong and what
//! was expected.

/// Everything that can go wrong while building batches or running an encoder.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum EncoderError {
    /// A tensor operation failed inside candle.
    #[error("tensor operation failed: {0}")]
    Tensor(#[from] candle_core::Error),
    /// A weights file could not be read.
    #[error("{file}: cannot read weights: {message}")]
    WeightsFile {
        /// The file.
        file: String,
        /// What went wrong.
        message: String,
    },
    /// The file does not hold the model asked for (naming scheme or dimensions).
    #[error("{file}: not a {model} checkpoint: {reason}")]
    WrongModel {
        /// The file.
        file: String,
        /// The model expected.
        model: String,
        /// Why not.
        reason: String,
    },
    /// A tensor the model needs is absent.
    #[error("{file}: tensor {name} is missing (expected shape {expected:?})")]
    MissingTensor {
        /// The file.
        file: String,
        /// Tensor name as written in the file's naming scheme.
        name: String,
        /// Shape the model needs.
        expected: Vec<usize>,
    },
    /// A tensor has the wrong shape.
    #[error("{file}: tensor {name} has shape {found:?}, expected {expected:?}")]
    ShapeMismatch {
        /// The file.
        file: String,
        /// Tensor name.
        name: String,
        /// Shape the model needs.
        expected: Vec<usize>,
        /// Shape in the file.
        found: Vec<usize>,
    },
    /// A tensor holds NaN or infinite values.
    #[error("{file}: tensor {name} holds {count} non-finite values (NaN or infinity)")]
    NonFinite {
        /// The file.
        file: String,
        /// Tensor name.
        name: String,
        /// How many.
        count: usize,
    },
    /// An input image does not fit the encoder's input.
    #[error("input {index}: {problem}")]
    BadInput {
        /// Position of the input in the batch.
        index: usize,
        /// What is wrong and what was expected.
        problem: String,
    },
    /// A batch with no images.
    #[error("empty batch: give at least one image")]
    EmptyBatch,
    /// The device asked for cannot be used.
    #[error("device {device}: {problem}")]
    Device {
        /// The device string.
        device: String,
        /// What is wrong and what to do.
        problem: String,
    },
    /// A configuration that cannot work.
    #[error("invalid configuration: {0}")]
    Config(String),
    /// A file could not be read.
    #[error("{path}: cannot read: {source}")]
    Io {
        /// The file.
        path: String,
        /// The operating system's error.
        #[source]
        source: std::io::Error,
    },
    /// A tokenizer file is unusable.
    #[error("{file}: {problem}")]
    Tokenizer {
        /// The file (e.g. `spiece.model`).
        file: String,
        /// What is wrong.
        problem: String,
    },
    /// A text input cannot be used.
    #[error("text {index}: {problem}")]
    BadText {
        /// Position of the text in the batch.
        index: usize,
        /// What is wrong and what to do.
        problem: String,
    },
}

/// Result type of this crate.
pub type Result<T, E = EncoderError> = std::result::Result<T, E>;
