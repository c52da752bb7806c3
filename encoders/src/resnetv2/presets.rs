//! The ResNet v2 models by name: timm's BiT presets (`resnetv2_<depth>x<width>_bit`, with the
//! input of their ImageNet-21k → 1k fine-tuned weights: 448×448 — 480 for 152x4 — Pillow
//! bilinear resize, mean = std = 0.5, i.e. [-1, 1]) and Derm Foundation (BiT-M R101x3 at
//! 448). What is and is not confirmed about Derm Foundation's input: docs/ENCODERS.md.

use super::config::ResNetV2Config;
use crate::input::{Filter, InputSpec, Resize};
use crate::model_entry::{Architecture, ModelEntry};
use crate::spec::OutputSpec;

/// Seed of the untrained stand-ins (haidef-seeded-v1).
pub const UNTRAINED_SEED: u64 = 0xB17;

/// timm's eval transform for the BiT presets: the shorter side to `size` (Pillow bilinear,
/// antialiased), the centre `size`², scaled to [-1, 1] (mean = std = 0.5).
pub(crate) fn input(size: usize) -> InputSpec {
    InputSpec::rgb_unit(size).with_mean_std([0.5; 3], [0.5; 3]).with_resize(Resize::Antialiased(Filter::Bilinear)).with_center_crop(1.0)
}

fn entry(name: &'static str, model_id: &'static str, summary: &'static str, cfg: ResNetV2Config, weights_hint: &'static str) -> ModelEntry {
    ModelEntry {
        name,
        model_id,
        summary,
        input: input(cfg.image_size),
        output: OutputSpec::Embedding(cfg.output_dim()),
        architecture: Architecture::ResNetV2(cfg),
        weight_names: "timm ResNetV2 state_dict names (stem.conv.weight, stages.0.blocks.0.conv1.weight, ...)",
        weights_hint,
        untrained_seed: UNTRAINED_SEED,
    }
}

/// The registry's ResNet v2 entries.
pub(crate) fn entries() -> Vec<ModelEntry> {
    let timm = "timm's hub weights (timm/resnetv2_<name>.goog_in21k_ft_in1k) saved as safetensors";
    vec![
        entry(
            "derm-foundation",
            "google/derm-foundation",
            "Google HAI-DEF Derm Foundation: BiT-M ResNet-101x3, 448x448 skin photographs -> 6144-d (legacy; MedSigLIP for new work)",
            ResNetV2Config::bit_101x3(448),
            "gated: google/derm-foundation on Hugging Face (a TensorFlow SavedModel; converting it is not done yet)",
        ),
        entry("resnetv2_50x1_bit", "timm/resnetv2_50x1_bit", "BiT-M ResNet-50x1 (timm), 448x448 -> 2048-d", ResNetV2Config::bit(&[3, 4, 6, 3], 1, 448), timm),
        entry("resnetv2_50x3_bit", "timm/resnetv2_50x3_bit", "BiT-M ResNet-50x3 (timm), 448x448 -> 6144-d", ResNetV2Config::bit(&[3, 4, 6, 3], 3, 448), timm),
        entry(
            "resnetv2_101x1_bit",
            "timm/resnetv2_101x1_bit",
            "BiT-M ResNet-101x1 (timm), 448x448 -> 2048-d",
            ResNetV2Config::bit(&[3, 4, 23, 3], 1, 448),
            timm,
        ),
        entry("resnetv2_101x3_bit", "timm/resnetv2_101x3_bit", "BiT-M ResNet-101x3 (timm), 448x448 -> 6144-d", ResNetV2Config::bit_101x3(448), timm),
        entry(
            "resnetv2_152x2_bit",
            "timm/resnetv2_152x2_bit",
            "BiT-M ResNet-152x2 (timm), 448x448 -> 4096-d",
            ResNetV2Config::bit(&[3, 8, 36, 3], 2, 448),
            timm,
        ),
        entry(
            "resnetv2_152x4_bit",
            "timm/resnetv2_152x4_bit",
            "BiT-M ResNet-152x4 (timm), 480x480 -> 8192-d",
            ResNetV2Config::bit(&[3, 8, 36, 3], 4, 480),
            timm,
        ),
    ]
}
