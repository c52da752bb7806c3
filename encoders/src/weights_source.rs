//! Where an encoder's weights came from, for the metadata written next to embeddings: shared by
//! every model family (ViT, SigLIP, HeAR).

use crate::error::{EncoderError, Result};
use sha2::{Digest, Sha256};
use std::path::Path;

/// What the weights of an encoder are, for the metadata written next to embeddings.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum WeightsSource {
    /// A checkpoint file, by path and SHA-256 (hex).
    File {
        /// Path as given.
        path: String,
        /// SHA-256 of the file's bytes.
        sha256: String,
    },
    /// The seeded generator: not a trained model.
    Untrained {
        /// Seed of haidef-seeded-v1.
        seed: u64,
    },
}

impl WeightsSource {
    /// The checkpoint file at `path`, hashed.
    pub(crate) fn file(path: &Path) -> Result<Self> {
        Ok(WeightsSource::File { path: path.display().to_string(), sha256: sha256_file(path)? })
    }

    /// What [`crate::Encoder::weights_id`] reports: the file's SHA-256, or `untrained`.
    pub(crate) fn id(&self) -> String {
        match self {
            WeightsSource::File { sha256, .. } => sha256.clone(),
            WeightsSource::Untrained { .. } => "untrained".to_string(),
        }
    }
}

/// SHA-256 of a file, hex.
fn sha256_file(path: &Path) -> Result<String> {
    let fail = |e: std::io::Error| EncoderError::WeightsFile { file: path.display().to_string(), message: e.to_string() };
    let mut f = std::fs::File::open(path).map_err(fail)?;
    let mut h = Sha256::new();
    std::io::copy(&mut f, &mut h).map_err(fail)?;
    Ok(h.finalize().iter().map(|b| format!("{b:02x}")).collect())
}
