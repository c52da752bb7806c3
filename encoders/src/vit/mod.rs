//! Vision Transformer: configuration ([`crate::VitConfig`]), weights ([`crate::VitWeights`]),
//! the forward pass ([`crate::Vit`]) and the encoder ([`crate::VitEncoder`]); the presets
//! built on it (Path Foundation, timm's ViT-B/16, the pathology models) and their registry
//! entries in `presets.rs`.

pub(crate) mod config;
pub(crate) mod encoder;
mod model;
pub mod path_foundation;
pub(crate) mod presets;
mod weights;

pub use config::{Activation, MlpKind, Pooling, VitConfig};
pub use encoder::VitEncoder;
pub use model::Vit;
pub use weights::{Naming, VitWeights};
