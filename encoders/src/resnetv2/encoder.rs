//! A ResNet v2 wrapped as an [`Encoder`]: model id, input spec, provenance of the weights.

use super::config::ResNetV2Config;
use super::model::ResNetV2;
use super::weights::ResNetV2Weights;
use crate::cpu_ops::forward_in_slices;
use crate::error::{EncoderError, Result};
use crate::input::InputSpec;
use crate::spec::{Encoder, OutputSpec};
use crate::weights_source::WeightsSource;
use candle_core::{DType, Device, Tensor};
use std::path::Path;

/// A ResNet v2 (BiT) encoder.
#[derive(Debug, Clone)]
pub struct ResNetV2Encoder {
    model_id: String,
    spec: InputSpec,
    output: OutputSpec,
    net: ResNetV2,
    source: WeightsSource,
    weights_id: String,
}

impl ResNetV2Encoder {
    /// An encoder from a `.safetensors` checkpoint with timm's names.
    pub fn load(model_id: &str, spec: InputSpec, cfg: &ResNetV2Config, path: &Path, device: &Device, dtype: DType) -> Result<Self> {
        check_spec(&spec, cfg)?;
        let weights = ResNetV2Weights::load(path, cfg)?;
        Self::build(model_id, spec, cfg, &weights, (device, dtype), WeightsSource::file(path)?)
    }

    /// An encoder with deterministic, untrained weights: its embeddings mean nothing. Callers
    /// must say so loudly (see [`crate::UNTRAINED_WARNING`]).
    pub fn untrained(model_id: &str, spec: InputSpec, cfg: &ResNetV2Config, seed: u64, device: &Device, dtype: DType) -> Result<Self> {
        check_spec(&spec, cfg)?;
        let weights = ResNetV2Weights::seeded(cfg, seed)?;
        Self::build(model_id, spec, cfg, &weights, (device, dtype), WeightsSource::Untrained { seed })
    }

    /// An encoder from weights already in memory.
    pub fn from_weights(model_id: &str, spec: InputSpec, cfg: &ResNetV2Config, weights: &ResNetV2Weights, device: &Device, dtype: DType) -> Result<Self> {
        check_spec(&spec, cfg)?;
        Self::build(model_id, spec, cfg, weights, (device, dtype), WeightsSource::Untrained { seed: 0 })
    }

    fn build(
        model_id: &str,
        spec: InputSpec,
        cfg: &ResNetV2Config,
        w: &ResNetV2Weights,
        (device, dtype): (&Device, DType),
        source: WeightsSource,
    ) -> Result<Self> {
        let net = ResNetV2::new(cfg, w, device, dtype)?;
        let weights_id = source.id();
        Ok(ResNetV2Encoder { model_id: model_id.into(), spec, output: OutputSpec::Embedding(cfg.output_dim()), net, source, weights_id })
    }

    /// Where the weights came from.
    pub fn weights_source(&self) -> &WeightsSource {
        &self.source
    }
}

fn check_spec(spec: &InputSpec, cfg: &ResNetV2Config) -> Result<()> {
    if (spec.height, spec.width, spec.channels) != (cfg.image_size, cfg.image_size, 3) {
        return Err(EncoderError::Config(format!(
            "input spec {}x{}x{} does not match the ResNet's {}x{}x3",
            spec.height, spec.width, spec.channels, cfg.image_size, cfg.image_size
        )));
    }
    Ok(())
}

impl Encoder for ResNetV2Encoder {
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
        self.net.device()
    }
    fn dtype(&self) -> DType {
        self.net.dtype()
    }
    fn embed(&self, batch: &Tensor) -> Result<Tensor> {
        forward_in_slices(batch, |x| Ok(self.net.forward(x)?.to_dtype(DType::F32)?))
    }
    fn is_trained(&self) -> bool {
        matches!(self.source, WeightsSource::File { .. })
    }
    fn weights_id(&self) -> &str {
        &self.weights_id
    }
}
