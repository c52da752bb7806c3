//! Text inputs: SentencePiece unigram models (`spiece.model`) read and applied exactly as
//! sentencepiece does, and the tokenizers of the models that take text (SigLIP).

pub mod normalizer;
pub mod siglip;
pub mod spm_model;
pub mod unigram;

pub use siglip::SiglipTokenizer;
pub use spm_model::SpmModel;
pub use unigram::Unigram;
