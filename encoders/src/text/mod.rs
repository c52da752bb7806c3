//! Text inputs: SentencePiece unigram models (`spiece.model`) read and applied exactly as
//! sentencepiece does, and the tokenizers of the models that take text (SigLIP).

mod normalizer;
mod siglip;
mod spm_model;
mod unigram;

pub use siglip::SiglipTokenizer;
pub use spm_model::{NormalizerSettings, Piece, PieceKind, SpmModel};
pub use unigram::Unigram;
