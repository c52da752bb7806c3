//! Models by name: what `--model NAME` means. Each entry declares the architecture, the input
//! (size, resizing, normalisation), the weight-name schemes its checkpoints may use, and the
//! output. Adding a model of a known architecture is one entry here; a new architecture adds
//! one module beside `vit`.
//!
//! ```
//! use haidef_wsi_encoders::registry;
//! use haidef_wsi_encoders::candle::{DType, Device};
//! let entry = registry::find("vit_base_patch16_224")?;
//! assert_eq!(entry.output.len(), 768);
//! let model = entry.untrained(&Device::Cpu, DType::F32)?; // or entry.load(path, ..)
//! assert_eq!(model.embedding_dim(), 768);
//! # Ok::<(), haidef_wsi_encoders::EncoderError>(())
//! ```

use crate::error::{EncoderError, Result};
use crate::input::{Filter, InputSpec, Resize};
use crate::spec::{Encoder, OutputSpec};
use crate::hear::HearEncoder;
use crate::siglip::{SiglipConfig, SiglipEncoder};
use crate::vit::VitConfig;
use crate::vit_encoder::VitEncoder;
use candle_core::{DType, Device};
use std::path::Path;

/// The model used when none is named.
pub const DEFAULT_MODEL: &str = "path-foundation";

/// How a model computes.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum Architecture {
    /// A Vision Transformer (`crate::vit`).
    Vit(VitConfig),
    /// SigLIP's image and text towers (`crate::siglip`).
    Siglip(SiglipConfig),
    /// HeAR: the audio front end and its ViT (`crate::hear`).
    Hear(VitConfig),
}

/// One model the library loads by name.
#[derive(Debug, Clone, PartialEq)]
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
            Architecture::Vit(cfg) => {
                Ok(Box::new(VitEncoder::from_safetensors(self.model_id, self.input.clone(), cfg.clone(), weights, device, dtype)?))
            }
            Architecture::Siglip(cfg) => Ok(Box::new(SiglipEncoder::load(self.model_id, self.input.clone(), cfg, weights, device, dtype)?)),
            Architecture::Hear(cfg) => Ok(Box::new(HearEncoder::load(self.model_id, cfg, weights, device, dtype)?)),
        }
    }

    /// The untrained stand-in with this model's shape and seeded weights: its embeddings mean
    /// nothing; show [`crate::UNTRAINED_WARNING`] wherever they are used.
    pub fn untrained(&self, device: &Device, dtype: DType) -> Result<Box<dyn Encoder>> {
        match &self.architecture {
            Architecture::Vit(cfg) => Ok(Box::new(VitEncoder::untrained(
                self.model_id,
                self.input.clone(),
                cfg.clone(),
                self.untrained_seed,
                device,
                dtype,
            )?)),
            Architecture::Siglip(cfg) => {
                Ok(Box::new(SiglipEncoder::untrained(self.model_id, self.input.clone(), cfg, self.untrained_seed, None, device, dtype)?))
            }
            Architecture::Hear(cfg) => Ok(Box::new(HearEncoder::untrained(self.model_id, cfg, self.untrained_seed, device, dtype)?)),
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

/// Every model the library knows, the default first.
pub fn models() -> Vec<ModelEntry> {
    vec![
        ModelEntry {
            name: DEFAULT_MODEL,
            model_id: crate::path_foundation::MODEL_ID,
            summary: "Google HAI-DEF Path Foundation: ViT-S/16, 224x224 H&E patches -> 384-d",
            architecture: Architecture::Vit(crate::path_foundation::config()),
            input: crate::path_foundation::input_spec(),
            output: OutputSpec::Embedding(384),
            weight_names: "timm vit_small_patch16_224 or Hugging Face ViTModel names",
            weights_hint: "gated: convert Google's SavedModel with tools/convert_path_foundation.py (README)",
            untrained_seed: crate::path_foundation::UNTRAINED_SEED,
        },
        ModelEntry {
            name: "vit_base_patch16_224",
            model_id: "timm/vit_base_patch16_224",
            summary: "timm ViT-B/16 at 224x224 -> 768-d class token after the final norm",
            architecture: Architecture::Vit(VitConfig::vit_b16()),
            // timm's default pretrained config for this model (augreg2_in21k_ft_in1k): mean = std
            // = 0.5, bicubic, crop_pct 0.9 (shorter side to 248, centre 224x224).
            input: InputSpec::rgb_unit(224)
                .with_mean_std([0.5; 3], [0.5; 3])
                .with_resize(Resize::Antialiased(Filter::Bicubic))
                .with_center_crop(0.9),
            output: OutputSpec::Embedding(768),
            weight_names: "timm vit_base_patch16_224 or Hugging Face ViTModel names",
            weights_hint: "save timm's state_dict with safetensors.torch.save_file (README)",
            untrained_seed: 0xB16,
        },
        ModelEntry {
            name: "medsiglip",
            model_id: "google/medsiglip-448",
            summary: "Google HAI-DEF MedSigLIP-448: SigLIP image + text towers, 448x448 -> 1152-d, zero-shot scores",
            architecture: Architecture::Siglip(SiglipConfig::medsiglip_448()),
            // As Google's serving prepares images (fixtures/medsiglip/README.md, section 6): 8 bits
            // (16-bit v / 257 rounded down), zero-padded to a centred square, Pillow bicubic to
            // 448x448, x/255, mean = std = 0.5, i.e. [-1, 1].
            input: InputSpec {
                pad_to_square: true,
                pad_centered: true,
                eight_bit: true,
                ..InputSpec::rgb_unit(448).with_mean_std([0.5; 3], [0.5; 3]).with_resize(Resize::Antialiased(Filter::Bicubic))
            },
            output: OutputSpec::Embedding(1152),
            weight_names: "transformers SiglipModel names (vision_model.*, text_model.*, logit_scale, logit_bias)",
            weights_hint: "gated: download google/medsiglip-448 from Hugging Face after accepting its terms; pass the folder",
            untrained_seed: 0x51C1,
        },
        ModelEntry {
            name: "hear",
            model_id: crate::hear::MODEL_ID,
            summary: "Google HAI-DEF HeAR: 2 s of 16 kHz audio -> mel-PCEN 192x128 -> ViT-L/16 -> 512-d",
            architecture: Architecture::Hear(crate::hear::vit_config()),
            input: crate::hear::input_spec(),
            output: OutputSpec::Embedding(512),
            weight_names: "transformers ViTModel names with pooler.dense (google/hear-pytorch)",
            weights_hint: "gated: download google/hear-pytorch from Hugging Face after accepting its terms; pass the folder",
            untrained_seed: crate::hear::UNTRAINED_SEED,
        },
    ]
    .into_iter()
    .chain(crate::pathology::entries())
    .collect()
}

/// The entry named `name` (case-insensitive; `-` and `_` are the same), or an error listing
/// the known names.
pub fn find(name: &str) -> Result<ModelEntry> {
    let key = |s: &str| s.to_ascii_lowercase().replace('-', "_");
    let all = models();
    let names: Vec<&str> = all.iter().map(|m| m.name).collect();
    let names = names.join(", ");
    all.into_iter()
        .find(|m| key(m.name) == key(name))
        .ok_or_else(|| EncoderError::Config(format!("unknown model {name:?}; known models: {names}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_resolve_and_unknown_names_list_the_known_ones() {
        assert_eq!(find("Path_Foundation").unwrap().name, DEFAULT_MODEL);
        let err = find("uni2").unwrap_err().to_string();
        assert!(err.contains("uni2") && err.contains("path-foundation") && err.contains("vit_base_patch16_224"), "{err}");
        for m in models() {
            let (h, w, d) = match &m.architecture {
                Architecture::Vit(cfg) => (cfg.image_height, cfg.image_width, cfg.output_dim()),
                Architecture::Siglip(cfg) => (cfg.image_size, cfg.image_size, cfg.vision.width),
                Architecture::Hear(cfg) => (1, crate::hear::audio_spec().clip_samples, cfg.output_dim()),
            };
            assert_eq!((m.input.height, m.input.width, m.output.len()), (h, w, d), "{}", m.name);
        }
    }
}
