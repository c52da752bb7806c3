//! ResNet v2 weights under timm's names, from a `.safetensors` checkpoint or the seeded
//! generator, each tensor checked for presence, shape and finiteness.

use super::config::ResNetV2Config;
use crate::checkpoint;
use crate::error::{EncoderError, Result};
use crate::seeded::seeded_tensor;
use candle_core::{Device, Tensor};
use std::collections::HashMap;
use std::path::Path;

/// A full, checked set of ResNet v2 tensors under timm names, f32 on the CPU.
#[derive(Debug, Clone)]
pub struct ResNetV2Weights {
    pub(crate) tensors: HashMap<String, Tensor>,
}

impl ResNetV2Weights {
    /// Deterministic untrained weights (haidef-seeded-v1, see [`crate::seeded`]).
    pub fn seeded(cfg: &ResNetV2Config, seed: u64) -> Result<Self> {
        cfg.validate()?;
        let tensors = cfg
            .tensor_shapes()
            .into_iter()
            .map(|(name, shape)| {
                let values = seeded_tensor(&name, &shape, seed);
                Ok((name, Tensor::from_vec(values, shape, &Device::Cpu)?))
            })
            .collect::<Result<_>>()?;
        Ok(ResNetV2Weights { tensors })
    }

    /// Loads a `.safetensors` checkpoint with timm's names (an optional `module.` or `model.`
    /// prefix is accepted; the classifier `head.*` is ignored). A missing, mis-shaped or
    /// non-finite tensor, as a checkpoint of another depth or width has, is an error naming it.
    pub fn load(path: &Path, cfg: &ResNetV2Config) -> Result<Self> {
        cfg.validate()?;
        let file = path.display().to_string();
        let raw = checkpoint::load(path)?;
        let prefix =
            ["", "module.", "model."].into_iter().find(|p| raw.contains_key(&format!("{p}stem.conv.weight"))).ok_or_else(|| EncoderError::WrongModel {
                file: file.clone(),
                model: "ResNet v2 (timm names)".into(),
                reason: format!("it has no stem.conv.weight; its first tensors are {:?}", checkpoint::first_names(&raw)),
            })?;
        let mut tensors = HashMap::new();
        for (name, expected) in cfg.tensor_shapes() {
            let t = checkpoint::checked(&raw, &file, &format!("{prefix}{name}"), &expected)?;
            tensors.insert(name, t);
        }
        // A deeper checkpoint has blocks this configuration does not: refuse it rather than
        // silently use part of it.
        let stages = format!("{prefix}stages.");
        if let Some(extra) = raw.keys().filter(|k| k.starts_with(&stages) && !tensors.contains_key(&k[prefix.len()..])).min() {
            return Err(EncoderError::WrongModel {
                file,
                model: format!("ResNet v2 with {:?} blocks per stage", cfg.layers),
                reason: format!("it has tensor {extra}, which this depth does not"),
            });
        }
        Ok(ResNetV2Weights { tensors })
    }

    /// The tensors under timm's names (to save as a `.safetensors` checkpoint, say).
    pub fn tensors(&self) -> &HashMap<String, Tensor> {
        &self.tensors
    }

    /// Tensor `name`, checked on load.
    pub(crate) fn get(&self, name: &str) -> Result<&Tensor> {
        self.tensors.get(name).ok_or_else(|| EncoderError::Config(format!("ResNet v2 tensor {name} missing")))
    }
}
