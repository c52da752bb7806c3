//! SentencePiece's text normaliser: the model's compiled rules (e.g. `nmt_nfkc`), applied
//! longest match first, then its whitespace handling.
//!
//! Written here rather than taken from `spm_precompiled` (what the `tokenizers` crate uses):
//! that crate applies the rules per grapheme with the *shortest* match, where SentencePiece
//! takes the longest match at each position, so some strings normalise differently
//! (docs/MEDSIGLIP.md, section 4). The double-array trie the rules are stored in is read as
//! sentencepiece's Darts-clone writes it.

use super::spm_model::NormalizerSettings;

/// The normaliser of one model.
#[derive(Debug, Clone)]
pub struct Normalizer {
    trie: Vec<u32>,
    /// Replacement strings, each ended by a NUL byte, indexed by the trie's values.
    replacements: Vec<u8>,
    settings: NormalizerSettings,
}

const SPACE_SYMBOL: &str = "\u{2581}";

impl Normalizer {
    /// Reads the compiled rules of `settings`; an empty rule set normalises nothing.
    pub fn new(settings: &NormalizerSettings) -> Result<Self, String> {
        let blob = &settings.charsmap;
        let (trie, replacements) = if blob.is_empty() {
            (Vec::new(), Vec::new())
        } else {
            let bad = || format!("the normaliser rules ({} bytes) are damaged", blob.len());
            let size = u32::from_le_bytes(blob.get(..4).ok_or_else(bad)?.try_into().expect("4 bytes")) as usize;
            let units = blob.get(4..4 + size).ok_or_else(bad)?;
            if !size.is_multiple_of(4) || size == 0 {
                return Err(bad());
            }
            let trie = units.chunks_exact(4).map(|c| u32::from_le_bytes(c.try_into().expect("4 bytes"))).collect();
            (trie, blob[4 + size..].to_vec())
        };
        Ok(Normalizer { trie, replacements, settings: settings.clone() })
    }

    /// The longest rule matching the start of `input`: (bytes consumed, replacement).
    fn longest_rule(&self, input: &[u8]) -> Option<(usize, &[u8])> {
        // Darts-clone units: bit 8 = has a leaf, bits 0..8 (and 31) = label, value in the low
        // 31 bits of a leaf unit, offset = (unit >> 10) << ((unit & (1 << 9)) >> 6).
        let offset = |u: u32| ((u >> 10) << ((u & (1 << 9)) >> 6)) as usize;
        let mut pos = offset(*self.trie.first()?);
        let mut best = None;
        for (i, &byte) in input.iter().enumerate() {
            pos ^= byte as usize;
            let unit = *self.trie.get(pos)?;
            if unit & ((1 << 31) | 0xFF) != u32::from(byte) {
                break;
            }
            pos ^= offset(unit);
            if (unit >> 8) & 1 == 1 {
                let value = (*self.trie.get(pos)? & ((1 << 31) - 1)) as usize;
                let rest = self.replacements.get(value..)?;
                let end = rest.iter().position(|b| *b == 0).unwrap_or(rest.len());
                best = Some((i + 1, &rest[..end]));
            }
        }
        best
    }

    /// Normalises `text` as SentencePiece does before splitting it into pieces.
    pub fn normalize(&self, text: &str) -> String {
        let s = &self.settings;
        let mut input = text.as_bytes();
        // One step: the longest rule at the start, or the next character unchanged.
        let step = |input: &[u8]| -> (Vec<u8>, usize) {
            match self.longest_rule(input) {
                Some((n, to)) => (to.to_vec(), n),
                None => {
                    let n = std::str::from_utf8(input).ok().and_then(|t| t.chars().next()).map_or(1, char::len_utf8);
                    (input[..n].to_vec(), n)
                }
            }
        };
        // Leading spaces go.
        if s.remove_extra_whitespaces {
            while !input.is_empty() {
                let (to, n) = step(input);
                if to != b" " {
                    break;
                }
                input = &input[n..];
            }
        }
        let mut out: Vec<u8> = Vec::with_capacity(text.len() + 3);
        if input.is_empty() {
            return String::new();
        }
        if s.add_dummy_prefix {
            out.extend_from_slice(if s.escape_whitespaces { SPACE_SYMBOL.as_bytes() } else { b" " });
        }
        let mut prev_space = s.remove_extra_whitespaces;
        while !input.is_empty() {
            let (to, n) = step(input);
            let mut piece: &[u8] = &to;
            while prev_space && piece.first() == Some(&b' ') {
                piece = &piece[1..];
            }
            if !piece.is_empty() {
                for &b in piece {
                    if s.escape_whitespaces && b == b' ' {
                        out.extend_from_slice(SPACE_SYMBOL.as_bytes());
                    } else {
                        out.push(b);
                    }
                }
                prev_space = piece.last() == Some(&b' ');
            }
            input = &input[n..];
            prev_space = prev_space && s.remove_extra_whitespaces;
        }
        // Trailing spaces (escaped or not) go, a literal `▁` included.
        if s.remove_extra_whitespaces {
            let space: &[u8] = if s.escape_whitespaces { SPACE_SYMBOL.as_bytes() } else { b" " };
            while out.ends_with(space) {
                out.truncate(out.len() - space.len());
            }
        }
        // Rules map UTF-8 to UTF-8, so the result is valid; replace anything else all the same.
        String::from_utf8(out).unwrap_or_else(|e| String::from_utf8_lossy(e.as_bytes()).into_owned())
    }
}
