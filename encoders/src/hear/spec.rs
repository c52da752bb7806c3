//! HeAR as Google configures it: model id, ViT, audio and input.

use crate::input::{AudioSpec, InputSpec, Range, Resize};
use crate::vit::{Activation, Pooling, VitConfig};

/// The model id written into outputs.
pub const MODEL_ID: &str = "google/hear-pytorch";
/// Seed of the untrained stand-in (haidef-seeded-v1).
pub const UNTRAINED_SEED: u64 = 0x4EA2;

/// HeAR's ViT, as Google's notebook configures `ViTModel` for `google/hear-pytorch`: 192 × 128
/// inputs of one channel, 16-pixel patches (12 × 8 = 96 tokens and a class token), width 1024,
/// 24 blocks, 16 heads, MLP 4096, `gelu_fast`, LayerNorm ε 1e-6, QKV bias, and the pooler a
/// linear 1024 → 512 projection of the class token (`pooler_output_size=512`,
/// `pooler_act="linear"`).
pub fn vit_config() -> VitConfig {
    VitConfig {
        image_height: 192,
        image_width: 128,
        channels: 1,
        activation: Activation::GeluTanh,
        pooling: Pooling::ClassToken,
        projection: Some(512),
        ..VitConfig::vit_l16()
    }
}

/// What HeAR takes: 2 s at 16 kHz.
pub fn audio_spec() -> AudioSpec {
    AudioSpec { sample_rate: 16_000, clip_samples: 32_000 }
}

/// The encoder's input as the batching core sees it: one clip is a 1 × 32,000 single-channel
/// f32 "image" of samples, taken as they are (the front end inside [`HearEncoder::embed`]
/// scales each clip itself).
pub fn input_spec() -> InputSpec {
    InputSpec {
        height: 1,
        width: audio_spec().clip_samples,
        channels: 1,
        resize: Resize::None,
        range: Range::Full,
        mean: vec![0.0],
        std: vec![1.0],
        ..InputSpec::rgb_unit(1)
    }
}
