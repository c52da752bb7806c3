//! Vision Transformer: configuration, weights and forward pass.

pub mod config;
pub mod model;
pub mod weights;

pub use config::{Activation, MlpKind, Pooling, VitConfig};
pub use model::Vit;
pub use weights::{Naming, VitWeights};
