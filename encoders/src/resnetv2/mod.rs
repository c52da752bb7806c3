//! ResNet v2 (Google's BiT: pre-activation bottlenecks, weight-standardised convolutions,
//! GroupNorm), the library's first convolutional family: Derm Foundation and timm's BiT
//! presets. Checked against timm's `ResNetV2` with the same seeded weights
//! (`fixtures/encoders/make_resnetv2_reference.py`, `encoders/tests/resnetv2.rs`).
//!
//! The types are at the crate root ([`crate::ResNetV2Config`], [`crate::ResNetV2Encoder`],
//! [`crate::ResNetV2Weights`], [`crate::ResNetV2`]); this module holds the seed of the untrained
//! stand-ins, [`UNTRAINED_SEED`].

pub(crate) mod config;
pub(crate) mod encoder;
pub(crate) mod model;
pub(crate) mod presets;
pub(crate) mod weights;

pub use presets::UNTRAINED_SEED;
