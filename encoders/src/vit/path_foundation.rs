//! Google's Path Foundation (HAI-DEF): ViT-S/16 on 224×224 H&E patches → 384-d embeddings,
//! input RGB / 255 in [0, 1] without mean/std, as its serving code feeds the model.

use super::config::VitConfig;
use super::encoder::VitEncoder;
use crate::error::Result;
use crate::input::InputSpec;
use candle_core::{DType, Device};
use std::path::Path;

/// The name users type (`--model path-foundation`): the registry's default.
pub(crate) const NAME: &str = "path-foundation";

/// Model id written into outputs.
pub const MODEL_ID: &str = "google/path-foundation";

/// Seed of the untrained stand-in (haidef-seeded-v1).
pub const UNTRAINED_SEED: u64 = 0x5EED;

/// The architecture: ViT-S/16, 224×224, class-token pooling, LayerNorm eps 1e-6.
pub(crate) fn config() -> VitConfig {
    VitConfig::vit_s16()
}

/// The input: 224×224 RGB scaled to [0, 1].
pub(crate) fn input_spec() -> InputSpec {
    InputSpec::rgb_unit(224)
}

/// Path Foundation from a `.safetensors` conversion of its weights (timm or Hugging Face
/// names; see `tools/convert_path_foundation.py` and the README).
pub fn load(weights: &Path, device: &Device, dtype: DType) -> Result<VitEncoder> {
    VitEncoder::from_safetensors(MODEL_ID, input_spec(), config(), weights, device, dtype)
}

/// The untrained, seeded stand-in with Path Foundation's shape. Its embeddings are not
/// meaningful: show [`crate::UNTRAINED_WARNING`] wherever they are used.
pub fn untrained(device: &Device, dtype: DType) -> Result<VitEncoder> {
    VitEncoder::untrained(MODEL_ID, input_spec(), config(), UNTRAINED_SEED, device, dtype)
}
