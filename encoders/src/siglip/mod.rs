//! SigLIP (MedSigLIP): an image tower and a text tower whose embeddings share one space, and
//! the sigmoid scores between them. The types are at the crate root: the architecture
//! ([`crate::SiglipConfig`]), the forward pass ([`crate::Siglip`]), the encoder
//! ([`crate::SiglipEncoder`]) and the tokenizer ([`crate::SiglipTokenizer`]). This module holds
//! the seeded stand-in's weights (`seeded_weights`) and their fixed logit scale and bias.

pub(crate) mod config;
pub(crate) mod encoder;
pub(crate) mod model;
pub(crate) mod presets;
mod seeded;

#[doc(hidden)]
pub use seeded::{seeded_tensors, seeded_weights};
pub use seeded::{SEEDED_LOGIT_BIAS, SEEDED_LOGIT_SCALE};
