//! What an encoder takes and gives: the input spec and the [`Encoder`] trait every model
//! (pathology, dermatology, chest X-ray, audio spectrogram) implements.

use crate::error::Result;
use candle_core::{DType, Device, Tensor};

/// How raw 8-bit images become the encoder's input tensor: `(pixel / divisor - mean) / std` per
/// channel, NCHW, at `height x width`.
#[derive(Debug, Clone, PartialEq)]
pub struct InputSpec {
    /// Input height in pixels.
    pub height: usize,
    /// Input width in pixels.
    pub width: usize,
    /// Channels the model takes (3 for RGB, 1 for greyscale X-ray or spectrograms).
    pub channels: usize,
    /// Divisor applied to 8-bit values first (255 maps them to [0, 1]).
    pub divisor: f32,
    /// Per-channel mean subtracted after scaling.
    pub mean: Vec<f32>,
    /// Per-channel standard deviation divided by after subtracting the mean.
    pub std: Vec<f32>,
}

impl InputSpec {
    /// RGB in [0, 1], no mean/std: what Google's Path Foundation serving feeds its model.
    pub fn rgb_unit(size: usize) -> Self {
        InputSpec { height: size, width: size, channels: 3, divisor: 255.0, mean: vec![0.0; 3], std: vec![1.0; 3] }
    }

    /// One line for metadata: `224x224x3, x/255, mean [0.0, 0.0, 0.0], std [1.0, 1.0, 1.0]`.
    pub fn describe(&self) -> String {
        format!(
            "{}x{}x{}, x/{}, mean {:?}, std {:?}",
            self.height, self.width, self.channels, self.divisor, self.mean, self.std
        )
    }
}

/// A model that maps a batch of images to one embedding per image.
pub trait Encoder: Send + Sync {
    /// Stable identifier of the model (e.g. `google/path-foundation`).
    fn model_id(&self) -> &str;
    /// What inputs it takes.
    fn input_spec(&self) -> &InputSpec;
    /// Length of each embedding.
    fn embedding_dim(&self) -> usize;
    /// Device its weights live on.
    fn device(&self) -> &Device;
    /// Dtype it computes in.
    fn dtype(&self) -> DType;
    /// Embeds a batch `(N, C, H, W)` built to [`Encoder::input_spec`] (see
    /// [`crate::batch::Batcher`]) and returns `(N, embedding_dim)` in f32.
    fn embed(&self, batch: &Tensor) -> Result<Tensor>;
    /// Whether the weights are a real checkpoint (false for the seeded, untrained model).
    fn is_trained(&self) -> bool;
    /// Where the weights came from: a file's SHA-256, or `untrained`.
    fn weights_id(&self) -> &str;
}
