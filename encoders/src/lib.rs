//! # haidef-wsi-encoders
//!
//! The tensor-batching core shared by every modality and one module per foundation model (Path
//! Foundation's ViT-S/16 first), on candle. This crate is a placeholder until issue 3 lands; it
//! holds nothing yet.
#![warn(missing_docs)]
