//! ViT weights: from `.safetensors` files with timm `state_dict` names or Hugging Face
//! `ViTModel` or `Dinov2Model` names, or from the seeded generator. Every tensor is checked for presence, shape
//! and finiteness and stored under timm names (Hugging Face names renamed by [`hf_name`], their
//! separate query/key/value fused as timm keeps them); the model is then built from a candle-nn
//! `VarBuilder` over these tensors.

use super::config::VitConfig;
use crate::checkpoint;
use crate::error::{EncoderError, Result};
use crate::seeded::seeded_tensor;
use candle_core::{DType, Device, Tensor};
use candle_nn::VarBuilder;
use std::collections::HashMap;
use std::path::Path;

/// Which naming scheme a checkpoint uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Naming {
    /// timm `VisionTransformer.state_dict()` (`blocks.0.attn.qkv.weight`, ...).
    Timm,
    /// Hugging Face transformers `ViTModel` (`encoder.layer.0.attention.attention.query.weight`, ...).
    HuggingFace,
    /// Hugging Face transformers `Dinov2Model` (`encoder.layer.0.layer_scale1.lambda1`,
    /// `encoder.layer.0.mlp.fc1.weight`, ...), e.g. Phikon-v2.
    HuggingFaceDinov2,
}

/// A full, checked set of ViT tensors under timm names, in f32 on the CPU.
#[derive(Debug, Clone)]
pub struct VitWeights {
    pub(crate) tensors: HashMap<String, Tensor>,
    /// Naming of the source (timm for seeded weights).
    pub naming: Naming,
}

impl VitWeights {
    /// Deterministic untrained weights (haidef-seeded-v1, see [`crate::seeded`]).
    pub fn seeded(cfg: &VitConfig, seed: u64) -> Result<Self> {
        cfg.validate()?;
        let mut tensors = HashMap::new();
        for (name, shape) in cfg.tensor_shapes() {
            let values = seeded_tensor(&name, &shape, seed);
            tensors.insert(name, Tensor::from_vec(values, shape, &Device::Cpu)?);
        }
        Ok(VitWeights { tensors, naming: Naming::Timm })
    }

    /// Loads a `.safetensors` checkpoint with timm or Hugging Face names (an optional `vit.`,
    /// `model.` or `module.` prefix is accepted). Extra tensors (classifier heads, poolers) are
    /// ignored; missing, mis-shaped or non-finite ones are errors that name them.
    pub fn load(path: &Path, cfg: &VitConfig) -> Result<Self> {
        cfg.validate()?;
        let file = path.display().to_string();
        let raw = checkpoint::load(path)?;
        let (naming, prefix) = detect_naming(&raw).ok_or_else(|| EncoderError::WrongModel {
            file: file.clone(),
            model: "ViT (timm or Hugging Face ViTModel)".into(),
            reason: format!(
                "found neither timm names (blocks.0.attn.qkv.weight) nor Hugging Face names \
                 (encoder.layer.0.attention.attention.query.weight); its first tensors are {:?}",
                checkpoint::first_names(&raw)
            ),
        })?;
        let get = |name: &str, expected: &[usize]| checkpoint::checked(&raw, &file, &format!("{prefix}{name}"), expected);
        let d = cfg.width;
        let mut tensors = HashMap::new();
        for (name, shape) in cfg.tensor_shapes() {
            if name == "pos_embed" {
                let hf = if naming == Naming::Timm { name.clone() } else { hf_name(&name).expect("pos_embed has one") };
                let t = raw.get(&format!("{prefix}{hf}")).ok_or_else(|| EncoderError::MissingTensor {
                    file: file.clone(),
                    name: format!("{prefix}{hf}"),
                    expected: shape.clone(),
                })?;
                if t.dims() != shape.as_slice() {
                    let resampled = resample_pos_embed(t, cfg).map_err(|reason| EncoderError::ShapeMismatch {
                        file: file.clone(),
                        name: format!("{prefix}{hf} ({reason})"),
                        expected: shape.clone(),
                        found: t.dims().to_vec(),
                    })?;
                    tensors.insert(name, resampled);
                    continue;
                }
            }
            let t = match naming {
                Naming::Timm => get(&name, &shape)?,
                Naming::HuggingFace | Naming::HuggingFaceDinov2 => match hf_qkv_part(&name) {
                    // timm fuses query, key and value; Hugging Face keeps them apart.
                    Some((layer, kind)) => {
                        let part_shape: Vec<usize> = if kind == "weight" { vec![d, d] } else { vec![d] };
                        let parts = ["query", "key", "value"]
                            .iter()
                            .map(|p| get(&format!("encoder.layer.{layer}.attention.attention.{p}.{kind}"), &part_shape))
                            .collect::<Result<Vec<_>>>()?;
                        Tensor::cat(&parts, 0)?
                    }
                    None => {
                        let hf = if naming == Naming::HuggingFace { hf_name(&name) } else { hf_dinov2_name(&name) };
                        let hf = hf.ok_or_else(|| EncoderError::Config(format!("no Hugging Face name for ViT tensor {name}")))?;
                        get(&hf, &shape)?
                    }
                },
            };
            tensors.insert(name, t);
        }
        Ok(VitWeights { tensors, naming })
    }

    /// A candle-nn `VarBuilder` over the tensors (timm names), giving them on `device` in
    /// `dtype`.
    pub fn var_builder(&self, device: &Device, dtype: DType) -> VarBuilder<'static> {
        VarBuilder::from_tensors(self.tensors.clone(), dtype, device)
    }
}

/// A checkpoint's position embedding `(1, prefix + g·g, width)` made at another input size,
/// resampled to `cfg`'s patch grid as timm does when it loads one (`resample_abs_pos_embed`:
/// the prefix rows kept, the g×g grid resized bicubic with antialiasing, which for float
/// samples is Pillow's antialiased bicubic, [`crate::resize`]).
fn resample_pos_embed(t: &Tensor, cfg: &VitConfig) -> std::result::Result<Tensor, String> {
    let prefix = cfg.pos_embed_len() - cfg.num_patches();
    let (one, len, width) = t.dims3().map_err(|e| e.to_string())?;
    if one != 1 || width != cfg.width || len <= prefix {
        return Err("not a position embedding of this width".into());
    }
    let g = ((len - prefix) as f64).sqrt().round() as usize;
    if g * g != len - prefix {
        return Err(format!("{} positions after {prefix} prefix rows are not a square grid", len - prefix));
    }
    let values = t.to_dtype(DType::F32).and_then(|t| t.flatten_all()).and_then(|t| t.to_vec1::<f32>()).map_err(|e| e.to_string())?;
    if values.iter().any(|v| !v.is_finite()) {
        return Err("non-finite values".into());
    }
    let (rows, cols) = cfg.grid();
    // Interleaved layout: each grid cell holds `width` samples, as an image holds channels.
    let grid = crate::resize::antialiased(&values[prefix * width..], (g, g), width, (cols, rows), crate::input::Filter::Bicubic);
    let mut out = values[..prefix * width].to_vec();
    out.extend(grid);
    Tensor::from_vec(out, (1, prefix + rows * cols, width), &Device::Cpu).map_err(|e| e.to_string())
}

/// Finds the naming scheme and prefix of a checkpoint.
fn detect_naming(raw: &HashMap<String, Tensor>) -> Option<(Naming, String)> {
    for prefix in ["", "vit.", "model.", "module.", "module.model."] {
        if raw.contains_key(&format!("{prefix}blocks.0.attn.qkv.weight")) {
            return Some((Naming::Timm, prefix.to_string()));
        }
        if raw.contains_key(&format!("{prefix}encoder.layer.0.attention.attention.query.weight")) {
            // Dinov2Model keeps its MLP under `mlp.` (ViTModel: `intermediate.`/`output.`).
            let dinov2 = raw.contains_key(&format!("{prefix}encoder.layer.0.mlp.fc1.weight"));
            return Some((if dinov2 { Naming::HuggingFaceDinov2 } else { Naming::HuggingFace }, prefix.to_string()));
        }
    }
    None
}

/// For `blocks.{i}.attn.qkv.{weight|bias}`: (i, weight|bias).
fn hf_qkv_part(timm: &str) -> Option<(usize, &str)> {
    let rest = timm.strip_prefix("blocks.")?;
    let (layer, tail) = rest.split_once('.')?;
    let kind = tail.strip_prefix("attn.qkv.")?;
    Some((layer.parse().ok()?, kind))
}

/// Hugging Face `ViTModel` name of a timm ViT tensor (other than the fused qkv), or `None`
/// for a name that is not one.
fn hf_name(timm: &str) -> Option<String> {
    let fixed = match timm {
        "cls_token" => Some("embeddings.cls_token"),
        "pos_embed" => Some("embeddings.position_embeddings"),
        "patch_embed.proj.weight" => Some("embeddings.patch_embeddings.projection.weight"),
        "patch_embed.proj.bias" => Some("embeddings.patch_embeddings.projection.bias"),
        "norm.weight" => Some("layernorm.weight"),
        "norm.bias" => Some("layernorm.bias"),
        "pooler.dense.weight" => Some("pooler.dense.weight"),
        "pooler.dense.bias" => Some("pooler.dense.bias"),
        _ => None,
    };
    if let Some(name) = fixed {
        return Some(name.to_string());
    }
    let (layer, tail) = timm.strip_prefix("blocks.")?.split_once('.')?;
    let (module, kind) = tail.rsplit_once('.')?;
    let hf = match module {
        "norm1" => "layernorm_before",
        "norm2" => "layernorm_after",
        "attn.proj" => "attention.output.dense",
        "mlp.fc1" => "intermediate.dense",
        "mlp.fc2" => "output.dense",
        _ => return None,
    };
    Some(format!("encoder.layer.{layer}.{hf}.{kind}"))
}

/// Hugging Face `Dinov2Model` name of a timm ViT tensor (other than the fused qkv), or `None`
/// for a name that is not one.
fn hf_dinov2_name(timm: &str) -> Option<String> {
    if let Some((layer, tail)) = timm.strip_prefix("blocks.").and_then(|r| r.split_once('.')) {
        let hf = match tail {
            "ls1.gamma" => "layer_scale1.lambda1".to_string(),
            "ls2.gamma" => "layer_scale2.lambda1".to_string(),
            _ => {
                let (module, kind) = tail.rsplit_once('.')?;
                let m = match module {
                    "norm1" | "norm2" | "mlp.fc1" | "mlp.fc2" => module,
                    "attn.proj" => "attention.output.dense",
                    _ => return None,
                };
                format!("{m}.{kind}")
            }
        };
        return Some(format!("encoder.layer.{layer}.{hf}"));
    }
    // The embeddings and the final norm are named as in ViTModel.
    hf_name(timm)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hugging_face_names() {
        assert_eq!(hf_name("blocks.3.norm1.weight").unwrap(), "encoder.layer.3.layernorm_before.weight");
        assert_eq!(hf_name("blocks.11.mlp.fc2.bias").unwrap(), "encoder.layer.11.output.dense.bias");
        assert_eq!(hf_name("blocks.0.attn.proj.weight").unwrap(), "encoder.layer.0.attention.output.dense.weight");
        assert_eq!(hf_name("pos_embed").unwrap(), "embeddings.position_embeddings");
        assert_eq!(hf_name("blocks.0.attn.qkv"), None);
        assert_eq!(hf_name("head.weight"), None);
        assert_eq!(hf_qkv_part("blocks.7.attn.qkv.bias"), Some((7, "bias")));
        assert_eq!(hf_qkv_part("blocks.7.attn.proj.bias"), None);
        assert_eq!(hf_dinov2_name("blocks.2.ls1.gamma").unwrap(), "encoder.layer.2.layer_scale1.lambda1");
        assert_eq!(hf_dinov2_name("blocks.2.mlp.fc2.bias").unwrap(), "encoder.layer.2.mlp.fc2.bias");
        assert_eq!(hf_dinov2_name("blocks.0.norm1.weight").unwrap(), "encoder.layer.0.norm1.weight");
        assert_eq!(hf_dinov2_name("blocks.0.attn.proj.weight").unwrap(), "encoder.layer.0.attention.output.dense.weight");
        assert_eq!(hf_dinov2_name("norm.bias").unwrap(), "layernorm.bias");
        assert_eq!(hf_dinov2_name("blocks.0.head"), None);
    }
}
