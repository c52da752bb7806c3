//! HeAR (Health Acoustic Representations), HAI-DEF's audio encoder: 2 s of 16 kHz mono audio →
//! a 192 × 128 mel-PCEN spectrogram ([`crate::FrontEnd`]) → a ViT-L/16 with one input channel → the
//! class token, projected linearly 1024 → 512 ([`crate::HearEncoder`]). The architecture is
//! transformers' `ViTModel` as Google's `google/hear-pytorch` configures it; every fact and its
//! source is in `docs/HEAR.md`. Google's weights are gated: without them the seeded, untrained
//! stand-in runs.
//!
//! The types are at the crate root ([`crate::HearEncoder`], [`crate::FrontEnd`],
//! [`crate::FrontEndConfig`]); this module holds HeAR's facts: [`MODEL_ID`], [`UNTRAINED_SEED`],
//! [`vit_config`], [`audio_spec`] and [`input_spec`].

mod cpu_path;
pub(crate) mod encoder;
pub(crate) mod frontend;
pub(crate) mod frontend_config;
pub(crate) mod presets;
mod spec;

pub use spec::{audio_spec, input_spec, vit_config, MODEL_ID, UNTRAINED_SEED};
