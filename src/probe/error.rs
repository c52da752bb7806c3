//! What can go wrong training or applying a classifier, each naming the file, column, key or
//! option at fault and what was expected.

use std::path::{Path, PathBuf};

/// An error of the classifier steps (`train_probe`, `predict_probe`).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ProbeError {
    /// A file cannot be read or written.
    #[error("{path}: {problem}")]
    File {
        /// The file.
        path: PathBuf,
        /// What went wrong (the underlying error's message).
        problem: String,
    },
    /// An embeddings file or label file holds something that cannot be used: a missing column,
    /// NaN values, mixed widths or models, labels for keys that do not exist.
    #[error("{path}: {problem}")]
    Data {
        /// The file (or folder) at fault.
        path: PathBuf,
        /// What is wrong and what to do.
        problem: String,
    },
    /// The labels do not allow what was asked (one class only, too few examples for the folds).
    #[error("{0}")]
    Labels(String),
    /// An option is out of range.
    #[error("{0}")]
    Options(String),
    /// Fitting failed (linfa's or candle's error).
    #[error("fitting {what} failed: {problem}")]
    Fit {
        /// The model being fitted.
        what: String,
        /// The solver's message.
        problem: String,
    },
}

impl ProbeError {
    pub(crate) fn file(path: &Path, e: impl std::fmt::Display) -> Self {
        ProbeError::File { path: path.to_path_buf(), problem: e.to_string() }
    }

    pub(crate) fn data(path: &Path, problem: impl Into<String>) -> Self {
        ProbeError::Data { path: path.to_path_buf(), problem: problem.into() }
    }
}

/// Results of the classifier steps.
pub type ProbeResult<T> = std::result::Result<T, ProbeError>;
