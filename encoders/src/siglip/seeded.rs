//! The seeded stand-in's weights (haidef-seeded-v1) for a SigLIP architecture.

use super::config::SiglipConfig;
use crate::error::Result;
use crate::seeded::seeded_tensor;
use candle_core::{DType, Device, Tensor};
use candle_nn::VarBuilder;
use std::collections::HashMap;

/// `logit_scale` of the seeded stand-in: SigLIP's initial value, ln 10 (not generator output).
pub const SEEDED_LOGIT_SCALE: f32 = std::f32::consts::LN_10;
/// `logit_bias` of the seeded stand-in: SigLIP's initial value, -10.
pub const SEEDED_LOGIT_BIAS: f32 = -10.0;

/// haidef-seeded-v1 weights for every tensor of `cfg` (transformers names), with the SigLIP
/// paper's initial `logit_scale` and `logit_bias`, as a `VarBuilder` on `device` in `dtype`.
#[doc(hidden)]
pub fn seeded_weights(cfg: &SiglipConfig, seed: u64, device: &Device, dtype: DType) -> Result<VarBuilder<'static>> {
    Ok(VarBuilder::from_tensors(seeded_tensors(cfg, seed)?, dtype, device))
}

/// The tensors of [`seeded_weights`], on the CPU in f32, by name.
#[doc(hidden)]
pub fn seeded_tensors(cfg: &SiglipConfig, seed: u64) -> Result<HashMap<String, Tensor>> {
    let mut tensors = HashMap::new();
    for (name, shape) in cfg.tensor_shapes() {
        let values = match name.as_str() {
            "logit_scale" => vec![SEEDED_LOGIT_SCALE],
            "logit_bias" => vec![SEEDED_LOGIT_BIAS],
            _ => seeded_tensor(&name, &shape, seed),
        };
        tensors.insert(name, Tensor::from_vec(values, shape, &Device::Cpu)?);
    }
    Ok(tensors)
}
