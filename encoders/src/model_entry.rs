//! What a model by name is ([`ModelEntry`]): its architecture, declared input and output, the
//! weight-name schemes of its checkpoints, and how to open it with or without weights. Each
//! model family declares its entries (`vit/presets.rs`, `siglip/presets.rs`,
//! `hear/presets.rs`, `resnetv2/presets.rs`); [`crate::registry`] gathers them.

use crate::error::Result;
use crate::hear::encoder::HearEncoder;
use crate::input::InputSpec;
use crate::resnetv2::config::ResNetV2Config;
use crate::resnetv2::encoder::ResNetV2Encoder;
use crate::siglip::config::SiglipConfig;
use crate::siglip::encoder::SiglipEncoder;
use crate::spec::{Encoder, OutputSpec};
use crate::vit::config::VitConfig;
use crate::vit::encoder::VitEncoder;
use candle_core::{DType, Device};
use std::path::Path;

/// How a model computes.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum Architecture {
    /// A Vision Transformer ([`crate::VitConfig`]).
    Vit(VitConfig),
    /// SigLIP's image and text towers ([`crate::SiglipConfig`]).
    Siglip(SiglipConfig),
    /// HeAR: the audio front end and its ViT ([`crate::hear`]).
    Hear(VitConfig),
    /// A ResNet v2 (BiT; [`crate::ResNetV2Config`]).
    ResNetV2(ResNetV2Config),
}

/// One model the library loads by name (see [`crate::registry`]).
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct ModelEntry {
    /// The name users type (`--model path-foundation`).
    pub name: &'static str,
    /// The model id written into outputs (`google/path-foundation`).
    pub model_id: &'static str,
    /// One line on what it is.
    pub summary: &'static str,
    /// The architecture.
    pub architecture: Architecture,
    /// What it takes.
    pub input: InputSpec,
    /// What it gives.
    pub output: OutputSpec,
    /// Tensor-name schemes its `.safetensors` checkpoints may use.
    pub weight_names: &'static str,
    /// Where real weights come from.
    pub weights_hint: &'static str,
    /// Seed of the untrained stand-in (haidef-seeded-v1).
    pub untrained_seed: u64,
}

impl ModelEntry {
    /// The model with weights from a `.safetensors` checkpoint.
    pub fn load(&self, weights: &Path, device: &Device, dtype: DType) -> Result<Box<dyn Encoder>> {
        match &self.architecture {
            Architecture::Vit(cfg) => Ok(Box::new(VitEncoder::from_safetensors(self.model_id, self.input.clone(), cfg.clone(), weights, device, dtype)?)),
            Architecture::Siglip(cfg) => Ok(Box::new(SiglipEncoder::load(self.model_id, self.input.clone(), cfg, weights, device, dtype)?)),
            Architecture::Hear(cfg) => Ok(Box::new(HearEncoder::load(self.model_id, cfg, weights, device, dtype)?)),
            Architecture::ResNetV2(cfg) => Ok(Box::new(ResNetV2Encoder::load(self.model_id, self.input.clone(), cfg, weights, device, dtype)?)),
        }
    }

    /// The untrained stand-in with this model's shape and seeded weights: its embeddings mean
    /// nothing; show [`crate::UNTRAINED_WARNING`] wherever they are used.
    pub fn untrained(&self, device: &Device, dtype: DType) -> Result<Box<dyn Encoder>> {
        match &self.architecture {
            Architecture::Vit(cfg) => Ok(Box::new(VitEncoder::untrained(self.model_id, self.input.clone(), cfg.clone(), self.untrained_seed, device, dtype)?)),
            Architecture::Siglip(cfg) => {
                Ok(Box::new(SiglipEncoder::untrained(self.model_id, self.input.clone(), cfg, self.untrained_seed, None, device, dtype)?))
            }
            Architecture::Hear(cfg) => Ok(Box::new(HearEncoder::untrained(self.model_id, cfg, self.untrained_seed, device, dtype)?)),
            Architecture::ResNetV2(cfg) => {
                Ok(Box::new(ResNetV2Encoder::untrained(self.model_id, self.input.clone(), cfg, self.untrained_seed, device, dtype)?))
            }
        }
    }

    /// `load` when weights are given, `untrained` otherwise.
    pub fn open(&self, weights: Option<&Path>, device: &Device, dtype: DType) -> Result<Box<dyn Encoder>> {
        match weights {
            Some(w) => self.load(w, device, dtype),
            None => self.untrained(device, dtype),
        }
    }
}
