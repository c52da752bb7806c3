//! SigLIP's tokenizer, as transformers' slow `SiglipTokenizer` (the one Google's MedSigLIP
//! serving runs) turns a prompt into 64 ids: lowercase, split around the special tokens,
//! ASCII punctuation removed, whitespace collapsed, SentencePiece unigram pieces, `</s>`
//! appended, truncated and padded with `</s>`. Step by step in docs/MEDSIGLIP.md (section 4);
//! checked id for id against transformers in encoders/tests/siglip_tokenizer.rs.

use super::spm_model::SpmModel;
use super::unigram::Unigram;
use crate::error::{EncoderError, Result};
use std::path::Path;

/// The end-of-text token, also used for padding.
const EOS: &str = "</s>";
/// The unknown token.
const UNK: &str = "<unk>";
/// SentencePiece's word-boundary mark.
const SPACE_MARK: char = '\u{2581}';

/// A SigLIP tokenizer over a SentencePiece model.
#[derive(Debug, Clone)]
pub struct SiglipTokenizer {
    unigram: Unigram,
    eos_id: u32,
    unk_id: u32,
    /// Pieces of `<unk>` alone: the prefix dropped from every chunk's pieces.
    unk_prefix_len: usize,
    /// The id of the piece `▁`, if the model has one.
    space_id: Option<u32>,
    max_len: usize,
}

/// Whitespace as Python's `str.isspace` (and so `\s` and `str.strip`) has it: Unicode
/// White_Space plus the information separators U+001C..U+001F.
fn py_space(c: char) -> bool {
    c.is_whitespace() || ('\u{1c}'..='\u{1f}').contains(&c)
}

/// big_vision's `canonicalize_text`, as transformers has it: ASCII punctuation removed, runs
/// of whitespace made one space, the ends stripped.
fn canonicalize_text(text: &str) -> String {
    let kept = text.chars().filter(|c| !c.is_ascii_punctuation());
    let mut out = String::with_capacity(text.len());
    let mut in_space = false;
    for c in kept {
        if py_space(c) {
            in_space = true;
        } else {
            if in_space && !out.is_empty() {
                out.push(' ');
            }
            in_space = false;
            out.push(c);
        }
    }
    out
}

impl SiglipTokenizer {
    /// The tokenizer of `spiece.model`, giving `max_len` ids per text (64 for MedSigLIP).
    pub fn open(spiece_model: &Path, max_len: usize) -> Result<Self> {
        let model = SpmModel::open(spiece_model)?;
        SiglipTokenizer::new(model, max_len).map_err(|problem| EncoderError::Tokenizer { file: spiece_model.display().to_string(), problem })
    }

    /// The tokenizer of a parsed model. Like transformers 4.51 (MedSigLIP's serving), it
    /// encodes with the model's dummy `▁` prefix turned off: it puts its own `▁` in front.
    pub fn new(mut model: SpmModel, max_len: usize) -> std::result::Result<Self, String> {
        model.normalizer.add_dummy_prefix = false;
        if max_len < 2 {
            return Err(format!("max_len {max_len} leaves no room for a token and {EOS}"));
        }
        let eos_id = model.id_of(EOS).ok_or_else(|| format!("the model has no {EOS} piece"))?;
        let unk_id = model.unk_id;
        let space_id = model.id_of(&SPACE_MARK.to_string());
        let unigram = Unigram::new(model)?;
        let unk_prefix_len = unigram.encode(UNK).len();
        Ok(SiglipTokenizer { unigram, eos_id, unk_id, unk_prefix_len, space_id, max_len })
    }

    /// Ids per text.
    pub fn max_len(&self) -> usize {
        self.max_len
    }

    /// The id of `</s>` (end of text and padding).
    pub fn eos_id(&self) -> u32 {
        self.eos_id
    }

    /// The pieces' ids of `text`, without `</s>`, truncation or padding.
    pub fn tokenize(&self, text: &str) -> Vec<u32> {
        let marked = format!("{SPACE_MARK}{}", text.replace(SPACE_MARK, " "));
        let lowered = lowercase_outside_specials(&marked);
        // (id, from a special token)
        let mut tokens: Vec<(u32, bool)> = Vec::new();
        for chunk in split_on_specials(&lowered) {
            match chunk {
                Chunk::Special(s) => tokens.push((if s == EOS { self.eos_id } else { self.unk_id }, true)),
                Chunk::Text(t) => {
                    let pieces = self.unigram.encode(&format!("{UNK}{}", canonicalize_text(t)));
                    tokens.extend(pieces.get(self.unk_prefix_len..).unwrap_or_default().iter().map(|id| (*id, false)));
                }
            }
        }
        // A lone `▁` before a special token at the start is dropped.
        if let [(first, false), (_, true), ..] = tokens[..] {
            if Some(first) == self.space_id {
                tokens.remove(0);
            }
        }
        tokens.into_iter().map(|(id, _)| id).collect()
    }

    /// `max_len` ids for `text`: its pieces, truncated to leave room for `</s>`, then `</s>`
    /// (unless the pieces end with it), padded with `</s>`.
    pub fn encode(&self, text: &str) -> Vec<u32> {
        let mut ids = self.tokenize(text);
        ids.truncate(self.max_len - 1);
        if ids.last() != Some(&self.eos_id) {
            ids.push(self.eos_id);
        }
        ids.resize(self.max_len, self.eos_id);
        ids
    }
}

/// Python's `str.lower` on every character outside the special tokens (transformers lowercases
/// character by character around them).
fn lowercase_outside_specials(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while !rest.is_empty() {
        if let Some(special) = [EOS, UNK].into_iter().find(|s| rest.starts_with(s)) {
            out.push_str(special);
            rest = &rest[special.len()..];
            continue;
        }
        let c = rest.chars().next().expect("not empty");
        out.extend(c.to_lowercase());
        rest = &rest[c.len_utf8()..];
    }
    out
}

enum Chunk<'a> {
    Special(&'static str),
    Text(&'a str),
}

/// Splits around `</s>` and `<unk>`; the text next to one loses its whitespace on that side
/// (the special tokens strip left and right), and empty chunks are dropped.
fn split_on_specials(text: &str) -> Vec<Chunk<'_>> {
    let mut chunks = Vec::new();
    let mut rest = text;
    let mut strip_left = false;
    loop {
        let next = [EOS, UNK].into_iter().filter_map(|s| rest.find(s).map(|at| (at, s))).min_by_key(|(at, _)| *at);
        let (before, special) = match next {
            Some((at, s)) => (&rest[..at], Some(s)),
            None => (rest, None),
        };
        let mut t = before;
        if strip_left {
            t = t.trim_start_matches(py_space);
        }
        if special.is_some() {
            t = t.trim_end_matches(py_space);
        }
        if !t.is_empty() {
            chunks.push(Chunk::Text(t));
        }
        match special {
            Some(s) => {
                chunks.push(Chunk::Special(s));
                rest = &rest[before.len() + s.len()..];
                strip_left = true;
            }
            None => break,
        }
    }
    chunks
}
