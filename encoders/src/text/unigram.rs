//! SentencePiece's unigram segmentation: the best-scoring split of normalised text into
//! pieces (Viterbi), unknown characters as the unknown piece or, with byte fallback, as their
//! UTF-8 bytes.
//!
//! Written here rather than taken from the `tokenizers` crate, whose `Unigram` sums scores in
//! f64 and draws its unknown score from every piece: segmentations with equal scores then come
//! out differently (`"x" * 200`, docs/MEDSIGLIP.md section 4). This follows sentencepiece's
//! arithmetic as of version 0.2.1: a candidate is the piece's f32 score plus the f32 best score
//! where it starts, added in f64 and compared strictly with the stored best (an f32), so that
//! the first of equal candidates wins; the unknown piece's candidate is added in f32.

use super::normalizer::Normalizer;
use super::spm_model::{PieceKind, SpmModel};
use std::collections::HashMap;

/// Penalty of the unknown piece below the lowest normal score (sentencepiece's kUnkPenalty).
const UNK_PENALTY: f32 = 10.0;

/// A unigram model ready to encode text.
#[derive(Debug, Clone)]
pub struct Unigram {
    model: SpmModel,
    normalizer: Normalizer,
    /// Matchable pieces (normal, user-defined, unused) by their bytes.
    lookup: HashMap<Vec<u8>, u32>,
    longest_piece: usize,
    min_score: f32,
    max_score: f32,
    /// Ids of `<0x00>`..`<0xFF>`, when the model falls back to bytes.
    byte_ids: Option<Vec<u32>>,
}

impl Unigram {
    /// Prepares `model` for encoding; errors when its normaliser rules or byte pieces are
    /// damaged.
    pub fn new(model: SpmModel) -> Result<Self, String> {
        let normalizer = Normalizer::new(&model.normalizer)?;
        let mut lookup = HashMap::new();
        let (mut min_score, mut max_score) = (f32::MAX, f32::MIN);
        for (id, p) in model.pieces.iter().enumerate() {
            if p.kind == PieceKind::Normal {
                min_score = min_score.min(p.score);
                max_score = max_score.max(p.score);
            }
            if matches!(p.kind, PieceKind::Normal | PieceKind::UserDefined | PieceKind::Unused) && !p.text.is_empty() {
                lookup.entry(p.text.as_bytes().to_vec()).or_insert(id as u32);
            }
        }
        let longest_piece = lookup.keys().map(Vec::len).max().unwrap_or(0);
        let byte_ids = if model.byte_fallback {
            let by_text: HashMap<&str, u32> =
                model.pieces.iter().enumerate().filter(|(_, p)| p.kind == PieceKind::Byte).map(|(i, p)| (p.text.as_str(), i as u32)).collect();
            let ids = (0..=255u8)
                .map(|b| by_text.get(format!("<0x{b:02X}>").as_str()).copied().ok_or_else(|| format!("byte fallback is on but piece <0x{b:02X}> is missing")))
                .collect::<Result<Vec<u32>, String>>()?;
            Some(ids)
        } else {
            None
        };
        Ok(Unigram { model, normalizer, lookup, longest_piece, min_score, max_score, byte_ids })
    }

    /// The model's pieces.
    pub fn model(&self) -> &SpmModel {
        &self.model
    }

    /// `text` normalised as the model does before splitting it.
    pub fn normalize(&self, text: &str) -> String {
        self.normalizer.normalize(text)
    }

    /// The piece ids of `text` (normalised first), unknown characters as bytes when the model
    /// falls back to bytes.
    pub fn encode(&self, text: &str) -> Vec<u32> {
        let normalized = self.normalize(text);
        let mut ids = Vec::new();
        for (surface, id) in self.segment(&normalized) {
            match &self.byte_ids {
                Some(bytes) if id == self.model.unk_id => ids.extend(surface.bytes().map(|b| bytes[b as usize])),
                _ => ids.push(id),
            }
        }
        ids
    }

    /// The best segmentation of already normalised text: (surface, id) per piece.
    pub fn segment<'t>(&self, text: &'t str) -> Vec<(&'t str, u32)> {
        #[derive(Clone, Copy)]
        struct Best {
            id: u32,
            score: f32,
            starts_at: Option<usize>,
        }
        let bytes = text.as_bytes();
        let size = bytes.len();
        let unk_score = self.min_score - UNK_PENALTY;
        let mut best = vec![Best { id: 0, score: 0.0, starts_at: None }; size + 1];
        for (start, ch) in text.char_indices() {
            let here = best[start].score;
            let char_len = ch.len_utf8();
            let mut has_single = false;
            for end in start + 1..=size.min(start + self.longest_piece) {
                let Some(&id) = self.lookup.get(&bytes[start..end]) else { continue };
                let piece = &self.model.pieces[id as usize];
                if piece.kind == PieceKind::Unused {
                    continue;
                }
                // sentencepiece 0.2.1 (what MedSigLIP's serving pins): the candidate is a double
                // (its score expression mixes float and double), compared strictly with the
                // stored best, which is a float. 0.2.3 adds in float and breaks some exact ties
                // the other way (fixtures/medsiglip/README.md).
                let score = if piece.kind == PieceKind::UserDefined { f64::from((end - start) as f32 * self.max_score) - 0.1 } else { f64::from(piece.score) };
                let candidate = score + f64::from(here);
                let target = &mut best[end];
                if target.starts_at.is_none() || candidate > f64::from(target.score) {
                    *target = Best { id, score: candidate as f32, starts_at: Some(start) };
                }
                if end - start == char_len {
                    has_single = true;
                }
            }
            if !has_single {
                let target = &mut best[start + char_len];
                let candidate = unk_score + here;
                if target.starts_at.is_none() || candidate > target.score {
                    *target = Best { id: self.model.unk_id, score: candidate, starts_at: Some(start) };
                }
            }
        }
        let mut out = Vec::new();
        let mut end = size;
        while end > 0 {
            let node = best[end];
            let start = node.starts_at.expect("every character boundary is reached");
            out.push((&text[start..end], node.id));
            end = start;
        }
        out.reverse();
        out
    }
}
