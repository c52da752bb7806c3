//! SigLIP's architecture: the two towers' sizes, the image and text lengths, and the tensors a
//! checkpoint holds (transformers' `SiglipModel` names).

use crate::error::{EncoderError, Result};

/// One tower's transformer.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct TowerConfig {
    /// Token width.
    pub width: usize,
    /// MLP hidden width.
    pub mlp_dim: usize,
    /// Blocks.
    pub depth: usize,
    /// Attention heads.
    pub heads: usize,
    /// LayerNorm epsilon.
    pub layer_norm_eps: f64,
}

/// A SigLIP model's architecture.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct SiglipConfig {
    /// The vision tower.
    pub vision: TowerConfig,
    /// The text tower.
    pub text: TowerConfig,
    /// Square input side in pixels.
    pub image_size: usize,
    /// Patch side in pixels.
    pub patch_size: usize,
    /// Token ids.
    pub vocab_size: usize,
    /// Token ids per text (positions of the text tower).
    pub max_text_len: usize,
    /// Width of the text tower's `head` output (= the vision width in SigLIP).
    pub projection_dim: usize,
}

impl SiglipConfig {
    /// MedSigLIP-448 (google/medsiglip-448): SigLIP so400m towers, 448×448 images, patch 14,
    /// 64 tokens of a 32,000-piece vocabulary; 27 + 27 blocks of width 1152 (docs/MEDSIGLIP.md).
    pub fn medsiglip_448() -> Self {
        let tower = TowerConfig { width: 1152, mlp_dim: 4304, depth: 27, heads: 16, layer_norm_eps: 1e-6 };
        SiglipConfig { vision: tower.clone(), text: tower, image_size: 448, patch_size: 14, vocab_size: 32000, max_text_len: 64, projection_dim: 1152 }
    }

    /// The same with `vision` and `text` blocks (tests run real widths at reduced depth).
    pub fn with_depth(mut self, vision: usize, text: usize) -> Self {
        self.vision.depth = vision;
        self.text.depth = text;
        self
    }

    /// Patches per image.
    pub fn num_patches(&self) -> usize {
        (self.image_size / self.patch_size).pow(2)
    }

    /// Checks that the sizes fit together.
    pub fn validate(&self) -> Result<()> {
        let bad = |m: String| Err(EncoderError::Config(m));
        if self.patch_size == 0 || !self.image_size.is_multiple_of(self.patch_size) {
            return bad(format!("image size {} is not a multiple of patch size {}", self.image_size, self.patch_size));
        }
        for (name, t) in [("vision", &self.vision), ("text", &self.text)] {
            if t.heads == 0 || t.width % t.heads != 0 {
                return bad(format!("{name} width {} does not split into {} heads", t.width, t.heads));
            }
        }
        if self.projection_dim != self.vision.width {
            return bad(format!("text projection {} differs from the image embedding width {}", self.projection_dim, self.vision.width));
        }
        Ok(())
    }

    /// Every tensor of a checkpoint: (transformers name, shape).
    pub fn tensor_shapes(&self) -> Vec<(String, Vec<usize>)> {
        let mut out: Vec<(String, Vec<usize>)> = vec![("logit_scale".into(), vec![1]), ("logit_bias".into(), vec![1])];
        let blocks = |out: &mut Vec<(String, Vec<usize>)>, prefix: &str, t: &TowerConfig| {
            let (d, m) = (t.width, t.mlp_dim);
            for i in 0..t.depth {
                let p = format!("{prefix}.encoder.layers.{i}");
                for (name, shape) in [
                    ("layer_norm1.weight", vec![d]),
                    ("layer_norm1.bias", vec![d]),
                    ("self_attn.k_proj.weight", vec![d, d]),
                    ("self_attn.k_proj.bias", vec![d]),
                    ("self_attn.v_proj.weight", vec![d, d]),
                    ("self_attn.v_proj.bias", vec![d]),
                    ("self_attn.q_proj.weight", vec![d, d]),
                    ("self_attn.q_proj.bias", vec![d]),
                    ("self_attn.out_proj.weight", vec![d, d]),
                    ("self_attn.out_proj.bias", vec![d]),
                    ("layer_norm2.weight", vec![d]),
                    ("layer_norm2.bias", vec![d]),
                    ("mlp.fc1.weight", vec![m, d]),
                    ("mlp.fc1.bias", vec![m]),
                    ("mlp.fc2.weight", vec![d, m]),
                    ("mlp.fc2.bias", vec![d]),
                ] {
                    out.push((format!("{p}.{name}"), shape));
                }
            }
        };
        let (t, v) = (&self.text, &self.vision);
        out.push(("text_model.embeddings.token_embedding.weight".into(), vec![self.vocab_size, t.width]));
        out.push(("text_model.embeddings.position_embedding.weight".into(), vec![self.max_text_len, t.width]));
        blocks(&mut out, "text_model", t);
        for (name, shape) in [
            ("text_model.final_layer_norm.weight", vec![t.width]),
            ("text_model.final_layer_norm.bias", vec![t.width]),
            ("text_model.head.weight", vec![self.projection_dim, t.width]),
            ("text_model.head.bias", vec![self.projection_dim]),
            ("vision_model.embeddings.patch_embedding.weight", vec![v.width, 3, self.patch_size, self.patch_size]),
            ("vision_model.embeddings.patch_embedding.bias", vec![v.width]),
            ("vision_model.embeddings.position_embedding.weight", vec![self.num_patches(), v.width]),
        ] {
            out.push((name.into(), shape));
        }
        blocks(&mut out, "vision_model", v);
        let (d, m) = (v.width, v.mlp_dim);
        for (name, shape) in [
            ("vision_model.post_layernorm.weight", vec![d]),
            ("vision_model.post_layernorm.bias", vec![d]),
            ("vision_model.head.probe", vec![1, 1, d]),
            ("vision_model.head.attention.in_proj_weight", vec![3 * d, d]),
            ("vision_model.head.attention.in_proj_bias", vec![3 * d]),
            ("vision_model.head.attention.out_proj.weight", vec![d, d]),
            ("vision_model.head.attention.out_proj.bias", vec![d]),
            ("vision_model.head.layernorm.weight", vec![d]),
            ("vision_model.head.layernorm.bias", vec![d]),
            ("vision_model.head.mlp.fc1.weight", vec![m, d]),
            ("vision_model.head.mlp.fc1.bias", vec![m]),
            ("vision_model.head.mlp.fc2.weight", vec![d, m]),
            ("vision_model.head.mlp.fc2.bias", vec![d]),
        ] {
            out.push((name.into(), shape));
        }
        out
    }
}
