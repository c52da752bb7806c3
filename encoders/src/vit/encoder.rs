//! A ViT wrapped as an [`Encoder`]: model id, input spec, provenance of the weights.

use super::config::VitConfig;
use super::model::Vit;
use super::weights::VitWeights;
use crate::cpu_ops::forward_in_slices;
use crate::error::{EncoderError, Result};
use crate::input::InputSpec;
use crate::spec::{Encoder, OutputSpec};
use crate::weights_source::WeightsSource;
use candle_core::{DType, Device, Tensor};
use std::path::Path;

/// A Vision Transformer encoder.
#[derive(Debug, Clone)]
pub struct VitEncoder {
    model_id: String,
    spec: InputSpec,
    output: OutputSpec,
    vit: Vit,
    source: WeightsSource,
    weights_id: String,
}

impl VitEncoder {
    /// An encoder from a `.safetensors` checkpoint (timm or Hugging Face names).
    pub fn from_safetensors(model_id: &str, spec: InputSpec, cfg: VitConfig, path: &Path, device: &Device, dtype: DType) -> Result<Self> {
        check_spec(&spec, &cfg)?;
        let weights = VitWeights::load(path, &cfg)?;
        Self::build(model_id, spec, cfg, &weights, (device, dtype), WeightsSource::file(path)?)
    }

    fn build(model_id: &str, spec: InputSpec, cfg: VitConfig, weights: &VitWeights, (device, dtype): (&Device, DType), source: WeightsSource) -> Result<Self> {
        let output = OutputSpec::Embedding(cfg.output_dim());
        let weights_id = source.id();
        let vit = Vit::new(cfg, weights.var_builder(device, dtype))?;
        Ok(VitEncoder { model_id: model_id.into(), spec, output, vit, source, weights_id })
    }

    /// An encoder with deterministic, untrained weights: its embeddings mean nothing. Callers
    /// must say so loudly (see [`crate::UNTRAINED_WARNING`]).
    pub fn untrained(model_id: &str, spec: InputSpec, cfg: VitConfig, seed: u64, device: &Device, dtype: DType) -> Result<Self> {
        check_spec(&spec, &cfg)?;
        let weights = VitWeights::seeded(&cfg, seed)?;
        Self::build(model_id, spec, cfg, &weights, (device, dtype), WeightsSource::Untrained { seed })
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
    if (spec.height, spec.width, spec.channels) != (cfg.image_height, cfg.image_width, cfg.channels) {
        return Err(EncoderError::Config(format!(
            "input spec {}x{}x{} does not match the ViT's {}x{}x{}",
            spec.height, spec.width, spec.channels, cfg.image_height, cfg.image_width, cfg.channels
        )));
    }
    Ok(())
}

impl Encoder for VitEncoder {
    fn model_id(&self) -> &str {
        &self.model_id
    }
    fn input_spec(&self) -> &InputSpec {
        &self.spec
    }
    fn output(&self) -> &OutputSpec {
        &self.output
    }
    fn device(&self) -> &Device {
        self.vit.device()
    }
    fn dtype(&self) -> DType {
        self.vit.dtype()
    }
    fn embed(&self, batch: &Tensor) -> Result<Tensor> {
        forward_in_slices(batch, |x| Ok(self.vit.forward(x)?.to_dtype(DType::F32)?))
    }
    fn is_trained(&self) -> bool {
        matches!(self.source, WeightsSource::File { .. })
    }
    fn weights_id(&self) -> &str {
        &self.weights_id
    }
}
