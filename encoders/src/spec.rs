//! What an encoder gives, and the [`Encoder`] trait every model (pathology, dermatology, chest
//! X-ray, audio spectrogram) implements.

use crate::error::Result;
use crate::input::{AudioSpec, InputSpec};
use candle_core::{DType, Device, Tensor};

/// The shape of what a model gives per input.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum OutputSpec {
    /// One vector of this length (Path Foundation: 384).
    Embedding(usize),
    /// A map of tokens, e.g. `[8, 8, 1376]` (CXR Foundation's feature map) or `[32, 768]`;
    /// flattened row-major into one vector per input.
    TokenMap(Vec<usize>),
}

impl OutputSpec {
    /// Floats per input.
    pub fn len(&self) -> usize {
        match self {
            OutputSpec::Embedding(d) => *d,
            OutputSpec::TokenMap(shape) => shape.iter().product(),
        }
    }

    /// Whether the output is empty (never, for a valid model).
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The shape per input: `[d]` or the token map's.
    pub fn shape(&self) -> Vec<usize> {
        match self {
            OutputSpec::Embedding(d) => vec![*d],
            OutputSpec::TokenMap(shape) => shape.clone(),
        }
    }
}

/// A model that maps a batch of images to one embedding (or token map) per image.
pub trait Encoder: Send + Sync {
    /// Stable identifier of the model (e.g. `google/path-foundation`).
    fn model_id(&self) -> &str;
    /// What inputs it takes.
    fn input_spec(&self) -> &InputSpec;
    /// What it gives per input.
    fn output(&self) -> &OutputSpec;
    /// Floats per input: the embedding's length, or the token map's size.
    fn embedding_dim(&self) -> usize {
        self.output().len()
    }
    /// Device its weights live on.
    fn device(&self) -> &Device;
    /// Dtype it computes in.
    fn dtype(&self) -> DType;
    /// Dtype its input batches are packed in: the compute dtype, except for models whose own
    /// front end needs f32 samples (HeAR's spectrogram).
    fn input_dtype(&self) -> DType {
        self.dtype()
    }
    /// Embeds a batch `(N, C, H, W)` built to [`Encoder::input_spec`] (see
    /// [`crate::Batcher`]) and returns `(N, embedding_dim)` in f32.
    fn embed(&self, batch: &Tensor) -> Result<Tensor>;
    /// Whether the weights are a real checkpoint (false for the seeded, untrained model).
    fn is_trained(&self) -> bool;
    /// Where the weights came from: a file's SHA-256, or `untrained`.
    fn weights_id(&self) -> &str;
    /// The model's text side, for models whose texts and images share one embedding space
    /// (SigLIP); `None` for image-only models.
    fn text_encoder(&self) -> Option<&dyn TextEncoder> {
        None
    }
    /// For audio models: the clips they take (rate and length). Such a model's
    /// [`Encoder::input_spec`] is a `1 × clip_samples` single-channel f32 "image" of samples,
    /// so that audio runs through the same batching and engine as images.
    fn audio_spec(&self) -> Option<&AudioSpec> {
        None
    }
}

/// The text side of an image–text model: text embeddings in the image embeddings' space, and
/// how a cosine becomes a score.
pub trait TextEncoder: Send + Sync {
    /// Embeds `texts` → `(N, embedding_dim)` in f32; an empty text is an error naming it.
    fn embed_texts(&self, texts: &[&str]) -> Result<Tensor>;
    /// `(scale, bias)`: a pair's score is `sigmoid(exp(scale) · cos(image, text) + bias)`.
    fn score_params(&self) -> (f32, f32);
}
