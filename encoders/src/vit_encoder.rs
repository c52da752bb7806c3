//! A ViT wrapped as an [`Encoder`]: model id, input spec, provenance of the weights.

use crate::error::{EncoderError, Result};
use crate::spec::{Encoder, InputSpec};
use crate::vit::{Vit, VitConfig, VitWeights};
use candle_core::{DType, Device, Tensor};
use sha2::{Digest, Sha256};
use std::path::Path;

/// What the weights of an encoder are, for the metadata written next to embeddings.
#[derive(Debug, Clone, PartialEq, Eq)]
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

/// A Vision Transformer encoder.
#[derive(Debug, Clone)]
pub struct VitEncoder {
    model_id: String,
    spec: InputSpec,
    vit: Vit,
    source: WeightsSource,
    weights_id: String,
}

impl VitEncoder {
    /// An encoder from a `.safetensors` checkpoint (timm or Hugging Face names).
    pub fn from_safetensors(
        model_id: &str,
        spec: InputSpec,
        cfg: VitConfig,
        path: &Path,
        device: &Device,
        dtype: DType,
    ) -> Result<Self> {
        check_spec(&spec, &cfg)?;
        let weights = VitWeights::load(path, &cfg, device, dtype)?;
        let sha256 = sha256_file(path)?;
        let source = WeightsSource::File { path: path.display().to_string(), sha256: sha256.clone() };
        Ok(VitEncoder { model_id: model_id.into(), spec, vit: Vit::new(cfg, &weights)?, source, weights_id: sha256 })
    }

    /// An encoder with deterministic, untrained weights: its embeddings mean nothing. Callers
    /// must say so loudly (see [`crate::UNTRAINED_WARNING`]).
    pub fn untrained(model_id: &str, spec: InputSpec, cfg: VitConfig, seed: u64, device: &Device, dtype: DType) -> Result<Self> {
        check_spec(&spec, &cfg)?;
        let weights = VitWeights::seeded(&cfg, seed, device, dtype)?;
        Ok(VitEncoder {
            model_id: model_id.into(),
            spec,
            vit: Vit::new(cfg, &weights)?,
            source: WeightsSource::Untrained { seed },
            weights_id: "untrained".into(),
        })
    }

    /// Where the weights came from.
    pub fn weights_source(&self) -> &WeightsSource {
        &self.source
    }

    /// The underlying ViT.
    pub fn vit(&self) -> &Vit {
        &self.vit
    }
}

fn check_spec(spec: &InputSpec, cfg: &VitConfig) -> Result<()> {
    if spec.height != cfg.image_size || spec.width != cfg.image_size || spec.channels != cfg.channels {
        return Err(EncoderError::Config(format!(
            "input spec {}x{}x{} does not match the ViT's {}x{}x{}",
            spec.height, spec.width, spec.channels, cfg.image_size, cfg.image_size, cfg.channels
        )));
    }
    Ok(())
}

/// SHA-256 of a file, hex.
pub fn sha256_file(path: &Path) -> Result<String> {
    let fail = |e: std::io::Error| EncoderError::WeightsFile { file: path.display().to_string(), message: e.to_string() };
    let mut f = std::fs::File::open(path).map_err(fail)?;
    let mut h = Sha256::new();
    std::io::copy(&mut f, &mut h).map_err(fail)?;
    Ok(h.finalize().iter().map(|b| format!("{b:02x}")).collect())
}

impl Encoder for VitEncoder {
    fn model_id(&self) -> &str {
        &self.model_id
    }
    fn input_spec(&self) -> &InputSpec {
        &self.spec
    }
    fn embedding_dim(&self) -> usize {
        self.vit.config().width
    }
    fn device(&self) -> &Device {
        self.vit.device()
    }
    fn dtype(&self) -> DType {
        self.vit.dtype()
    }
    fn embed(&self, batch: &Tensor) -> Result<Tensor> {
        if batch.dims().first() == Some(&0) {
            return Err(EncoderError::EmptyBatch);
        }
        let n = batch.dims()[0];
        let threads = rayon::current_num_threads();
        if self.vit.device().is_cpu() && threads > 1 && n >= threads {
            // On CPU, one forward pass per thread over a slice of the batch scales better than
            // splitting every (small) matrix product between threads.
            use rayon::prelude::*;
            // Slices of at most 4 images keep each pass's intermediates cache-sized.
            let per = n.div_ceil(threads).min(4);
            let parts: Vec<Tensor> = (0..n.div_ceil(per))
                .into_par_iter()
                .map(|i| {
                    let len = per.min(n - i * per);
                    Ok(self.vit.forward(&batch.narrow(0, i * per, len)?)?.to_dtype(DType::F32)?)
                })
                .collect::<Result<_>>()?;
            return Ok(Tensor::cat(&parts, 0)?);
        }
        Ok(self.vit.forward(batch)?.to_dtype(DType::F32)?)
    }
    fn is_trained(&self) -> bool {
        matches!(self.source, WeightsSource::File { .. })
    }
    fn weights_id(&self) -> &str {
        &self.weights_id
    }
}
