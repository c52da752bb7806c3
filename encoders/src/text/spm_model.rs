//! A SentencePiece model file (`spiece.model`): its pieces with scores and types, the ids of
//! the special pieces, and its normaliser settings. The file is a `ModelProto` protocol buffer
//! (sentencepiece's `sentencepiece_model.proto`); the few fields used here are declared with
//! prost's derive, fields not declared are skipped.

use crate::error::{EncoderError, Result};
use prost::Message;
use std::path::Path;

/// `ModelProto`: field numbers as in sentencepiece's `sentencepiece_model.proto`.
#[derive(Clone, PartialEq, Message)]
struct ModelProto {
    #[prost(message, repeated, tag = "1")]
    pieces: Vec<PieceProto>,
    #[prost(message, optional, tag = "2")]
    trainer_spec: Option<TrainerSpec>,
    #[prost(message, optional, tag = "3")]
    normalizer_spec: Option<NormalizerSpec>,
}

#[derive(Clone, PartialEq, Message)]
struct PieceProto {
    #[prost(string, optional, tag = "1")]
    piece: Option<String>,
    #[prost(float, optional, tag = "2")]
    score: Option<f32>,
    #[prost(int32, optional, tag = "3")]
    kind: Option<i32>,
}

#[derive(Clone, PartialEq, Message)]
struct TrainerSpec {
    /// 1 = UNIGRAM, 2 = BPE, 3 = WORD, 4 = CHAR.
    #[prost(int32, optional, tag = "3")]
    model_type: Option<i32>,
    #[prost(bool, optional, tag = "35")]
    byte_fallback: Option<bool>,
    #[prost(int32, optional, tag = "40")]
    unk_id: Option<i32>,
}

#[derive(Clone, PartialEq, Message)]
struct NormalizerSpec {
    #[prost(string, optional, tag = "1")]
    name: Option<String>,
    #[prost(bytes = "vec", optional, tag = "2")]
    precompiled_charsmap: Option<Vec<u8>>,
    #[prost(bool, optional, tag = "3")]
    add_dummy_prefix: Option<bool>,
    #[prost(bool, optional, tag = "4")]
    remove_extra_whitespaces: Option<bool>,
    #[prost(bool, optional, tag = "5")]
    escape_whitespaces: Option<bool>,
}

/// What a piece is (`ModelProto.SentencePiece.Type`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum PieceKind {
    /// An ordinary piece, matched in text.
    Normal,
    /// The unknown piece.
    Unknown,
    /// A control symbol (`</s>`, `<pad>`): never matched in text.
    Control,
    /// A user-defined symbol: matched in text, preferred over normal pieces.
    UserDefined,
    /// Unused: never matched.
    Unused,
    /// A byte-fallback piece `<0xXX>`.
    Byte,
}

/// One piece of the vocabulary.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct Piece {
    /// Its text (`▁` for a space).
    pub text: String,
    /// Its log-probability.
    pub score: f32,
    /// Its kind.
    pub kind: PieceKind,
}

/// The normaliser settings of a model.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct NormalizerSettings {
    /// Rule name, e.g. `nmt_nfkc`.
    pub name: String,
    /// The compiled rules (a Darts double-array trie and the replacement strings).
    pub charsmap: Vec<u8>,
    /// Put `▁` before the text.
    pub add_dummy_prefix: bool,
    /// Drop leading and trailing spaces, collapse runs of spaces.
    pub remove_extra_whitespaces: bool,
    /// Write spaces as `▁`.
    pub escape_whitespaces: bool,
}

/// A SentencePiece unigram model as read from its file.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct SpmModel {
    /// The pieces; a piece's id is its index.
    pub pieces: Vec<Piece>,
    /// Id of the unknown piece.
    pub unk_id: u32,
    /// Unknown characters are written as their UTF-8 bytes (`<0xXX>` pieces).
    pub byte_fallback: bool,
    /// How text is normalised before it is split.
    pub normalizer: NormalizerSettings,
}

impl SpmModel {
    /// Reads `spiece.model`.
    pub fn open(path: &Path) -> Result<Self> {
        let bytes = std::fs::read(path).map_err(|e| EncoderError::Io { path: path.display().to_string(), source: e })?;
        SpmModel::from_bytes(&bytes).map_err(|problem| EncoderError::Tokenizer { file: path.display().to_string(), problem })
    }

    /// Parses the bytes of a model file; the error says what is wrong.
    pub fn from_bytes(bytes: &[u8]) -> std::result::Result<Self, String> {
        let proto = ModelProto::decode(bytes).map_err(|e| format!("not a SentencePiece model (ModelProto): {e}"))?;
        if proto.pieces.is_empty() {
            return Err("not a SentencePiece model: it has no pieces".into());
        }
        let trainer = proto.trainer_spec.unwrap_or_default();
        if let Some(t) = trainer.model_type.filter(|t| *t != 1) {
            return Err(format!("a SentencePiece model of type {t} (BPE, word or char); only unigram models (type 1) are supported"));
        }
        let pieces = proto
            .pieces
            .into_iter()
            .enumerate()
            .map(|(id, p)| {
                let kind = match p.kind.unwrap_or(1) {
                    1 => PieceKind::Normal,
                    2 => PieceKind::Unknown,
                    3 => PieceKind::Control,
                    4 => PieceKind::UserDefined,
                    5 => PieceKind::Unused,
                    6 => PieceKind::Byte,
                    other => return Err(format!("piece {id} has type {other}, not one of 1..=6")),
                };
                Ok(Piece { text: p.piece.unwrap_or_default(), score: p.score.unwrap_or(0.0), kind })
            })
            .collect::<std::result::Result<Vec<_>, String>>()?;
        let unk_id = trainer.unk_id.unwrap_or(0);
        match pieces.get(unk_id as usize) {
            Some(p) if p.kind == PieceKind::Unknown => {}
            _ => return Err(format!("its unknown piece (id {unk_id}) is missing or not of the UNKNOWN type")),
        }
        let spec = proto.normalizer_spec.unwrap_or_default();
        let normalizer = NormalizerSettings {
            name: spec.name.unwrap_or_default(),
            charsmap: spec.precompiled_charsmap.unwrap_or_default(),
            add_dummy_prefix: spec.add_dummy_prefix.unwrap_or(true),
            remove_extra_whitespaces: spec.remove_extra_whitespaces.unwrap_or(true),
            escape_whitespaces: spec.escape_whitespaces.unwrap_or(true),
        };
        Ok(SpmModel { pieces, unk_id: unk_id as u32, byte_fallback: trainer.byte_fallback.unwrap_or(false), normalizer })
    }

    /// The id of a piece by its text.
    pub fn id_of(&self, text: &str) -> Option<u32> {
        self.pieces.iter().position(|p| p.text == text).map(|i| i as u32)
    }
}
