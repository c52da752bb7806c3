//! Vision Transformer architecture as data: ViT-S/B/L/H/g at any input height × width, with
//! the DINOv2-style parts today's pathology encoders use (register tokens, LayerScale, SwiGLU
//! MLPs packed as timm packs them, position embeddings without the prefix tokens, class token
//! ⊕ mean pooling), are configuration, not code.

use crate::error::{EncoderError, Result};

/// How the image embedding is taken from the final tokens.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Pooling {
    /// The class token (Path Foundation, timm `global_pool='token'`).
    ClassToken,
    /// The mean of the patch tokens (class and register tokens excluded).
    MeanPatchTokens,
    /// The class token followed by the mean of the patch tokens (register tokens excluded):
    /// twice the width (Virchow2's published embedding).
    ClassTokenAndMeanPatchTokens,
}

/// The MLP of each block.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum MlpKind {
    /// `fc2(act(fc1(x)))` with [`VitConfig::activation`].
    Standard,
    /// SwiGLU packed into one first layer, as timm's `SwiGLUPacked` (`GluMlp` with SiLU, gate
    /// first): `h = fc1(x)` of `mlp_dim` features, `fc2(silu(h[..mlp_dim/2]) * h[mlp_dim/2..])`.
    SwiGluPacked,
}

/// The MLP's activation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Activation {
    /// GELU with erf (timm, Hugging Face `gelu`).
    Gelu,
    /// GELU's tanh approximation (Hugging Face `gelu_fast`, `gelu_new`, `gelu_pytorch_tanh`:
    /// the same formula, `0.5x(1 + tanh(√(2/π)(x + 0.044715x³)))`).
    GeluTanh,
}

/// A ViT's shape.
#[derive(Debug, Clone, PartialEq)]
pub struct VitConfig {
    /// Input height in pixels.
    pub image_height: usize,
    /// Input width in pixels.
    pub image_width: usize,
    /// Patch side in pixels.
    pub patch_size: usize,
    /// Input channels.
    pub channels: usize,
    /// Token width (embedding dimension).
    pub width: usize,
    /// Number of transformer blocks.
    pub depth: usize,
    /// Attention heads per block.
    pub heads: usize,
    /// Hidden width of the MLP.
    pub mlp_dim: usize,
    /// Whether the query/key/value projection has a bias.
    pub qkv_bias: bool,
    /// LayerNorm epsilon (timm 1e-6; Hugging Face ViT defaults to 1e-12).
    pub layer_norm_eps: f64,
    /// Pooling of the final tokens.
    pub pooling: Pooling,
    /// MLP activation.
    pub activation: Activation,
    /// A linear projection of the pooled token to this many dimensions (Hugging Face
    /// `ViTPooler` with `pooler_act="linear"`, tensors `pooler.dense.{weight,bias}`), e.g.
    /// HeAR's 1024 → 512. `None`: the pooled token is the embedding.
    pub projection: Option<usize>,
    /// Register tokens after the class token (timm `reg_tokens`, tensor `reg_token`).
    pub reg_tokens: usize,
    /// Whether the position embedding covers the patches only (timm `no_embed_class=True`):
    /// the class and register tokens are then added without one.
    pub no_embed_class: bool,
    /// LayerScale on both residual branches (timm `init_values`, tensors `ls1.gamma`,
    /// `ls2.gamma`).
    pub layer_scale: bool,
    /// The MLP's form.
    pub mlp: MlpKind,
}

impl VitConfig {
    /// ViT-S/16 at 224×224: Path Foundation's architecture (width 384, depth 12, 6 heads, MLP 1536).
    pub fn vit_s16() -> Self {
        VitConfig {
            image_height: 224,
            image_width: 224,
            patch_size: 16,
            channels: 3,
            width: 384,
            depth: 12,
            heads: 6,
            mlp_dim: 1536,
            qkv_bias: true,
            layer_norm_eps: 1e-6,
            pooling: Pooling::ClassToken,
            activation: Activation::Gelu,
            projection: None,
            reg_tokens: 0,
            no_embed_class: false,
            layer_scale: false,
            mlp: MlpKind::Standard,
        }
    }

    /// ViT-B/16 (width 768, depth 12, 12 heads, MLP 3072).
    pub fn vit_b16() -> Self {
        VitConfig { width: 768, heads: 12, mlp_dim: 3072, ..Self::vit_s16() }
    }

    /// ViT-L/16 (width 1024, depth 24, 16 heads, MLP 4096).
    pub fn vit_l16() -> Self {
        VitConfig { width: 1024, depth: 24, heads: 16, mlp_dim: 4096, ..Self::vit_s16() }
    }

    /// ViT-H/14 (width 1280, depth 32, 16 heads, MLP 5120, 14-pixel patches).
    pub fn vit_h14() -> Self {
        VitConfig { patch_size: 14, width: 1280, depth: 32, heads: 16, mlp_dim: 5120, ..Self::vit_s16() }
    }

    /// ViT-g/14 as DINOv2 and timm's `vit_giant_patch14_dinov2` have it (width 1536, depth 40,
    /// 24 heads, SwiGLU packed in 8192 features, LayerScale).
    pub fn vit_g14() -> Self {
        VitConfig { patch_size: 14, width: 1536, depth: 40, heads: 24, mlp_dim: 8192, layer_scale: true, mlp: MlpKind::SwiGluPacked, ..Self::vit_s16() }
    }

    /// Patches down and across: `(rows, cols)`.
    pub fn grid(&self) -> (usize, usize) {
        (self.image_height / self.patch_size, self.image_width / self.patch_size)
    }

    /// Patch tokens per image.
    pub fn num_patches(&self) -> usize {
        let (rows, cols) = self.grid();
        rows * cols
    }

    /// Floats per embedding: the projection's width, or the pooled width.
    pub fn output_dim(&self) -> usize {
        self.projection.unwrap_or(match self.pooling {
            Pooling::ClassTokenAndMeanPatchTokens => 2 * self.width,
            _ => self.width,
        })
    }

    /// Tokens before the patches: the class token and the register tokens.
    pub fn prefix_tokens(&self) -> usize {
        1 + self.reg_tokens
    }

    /// Rows of the position embedding.
    pub fn pos_embed_len(&self) -> usize {
        self.num_patches() + if self.no_embed_class { 0 } else { self.prefix_tokens() }
    }

    /// Input features of the second MLP layer (half the first's output for packed SwiGLU).
    pub fn fc2_in(&self) -> usize {
        match self.mlp {
            MlpKind::Standard => self.mlp_dim,
            MlpKind::SwiGluPacked => self.mlp_dim / 2,
        }
    }

    /// Width of one attention head.
    pub fn head_dim(&self) -> usize {
        self.width / self.heads
    }

    /// Checks that the numbers fit together.
    pub fn validate(&self) -> Result<()> {
        let fail = |m: String| Err(EncoderError::Config(m));
        if [self.image_height, self.image_width, self.patch_size, self.channels, self.width, self.depth, self.heads, self.mlp_dim, self.output_dim()]
            .contains(&0)
        {
            return fail(format!("every ViT dimension must be positive: {self:?}"));
        }
        if !self.image_height.is_multiple_of(self.patch_size) || !self.image_width.is_multiple_of(self.patch_size) {
            return fail(format!("image size {}x{} is not a multiple of patch size {}", self.image_height, self.image_width, self.patch_size));
        }
        if !self.width.is_multiple_of(self.heads) {
            return fail(format!("width {} is not divisible by {} heads", self.width, self.heads));
        }
        if self.mlp == MlpKind::SwiGluPacked && !self.mlp_dim.is_multiple_of(2) {
            return fail(format!("a packed SwiGLU MLP needs an even width, got {}", self.mlp_dim));
        }
        if !(self.layer_norm_eps.is_finite() && self.layer_norm_eps > 0.0) {
            return fail(format!("LayerNorm epsilon must be positive, got {}", self.layer_norm_eps));
        }
        Ok(())
    }

    /// Every tensor the model needs, with timm `state_dict` names and shapes.
    pub fn tensor_shapes(&self) -> Vec<(String, Vec<usize>)> {
        let (d, m, p, c) = (self.width, self.mlp_dim, self.patch_size, self.channels);
        let mut v: Vec<(String, Vec<usize>)> = vec![("cls_token".into(), vec![1, 1, d])];
        if self.reg_tokens > 0 {
            v.push(("reg_token".into(), vec![1, self.reg_tokens, d]));
        }
        v.push(("pos_embed".into(), vec![1, self.pos_embed_len(), d]));
        v.push(("patch_embed.proj.weight".into(), vec![d, c, p, p]));
        v.push(("patch_embed.proj.bias".into(), vec![d]));
        for i in 0..self.depth {
            let b = |s: &str| format!("blocks.{i}.{s}");
            v.push((b("norm1.weight"), vec![d]));
            v.push((b("norm1.bias"), vec![d]));
            v.push((b("attn.qkv.weight"), vec![3 * d, d]));
            if self.qkv_bias {
                v.push((b("attn.qkv.bias"), vec![3 * d]));
            }
            v.push((b("attn.proj.weight"), vec![d, d]));
            v.push((b("attn.proj.bias"), vec![d]));
            if self.layer_scale {
                v.push((b("ls1.gamma"), vec![d]));
            }
            v.push((b("norm2.weight"), vec![d]));
            v.push((b("norm2.bias"), vec![d]));
            v.push((b("mlp.fc1.weight"), vec![m, d]));
            v.push((b("mlp.fc1.bias"), vec![m]));
            v.push((b("mlp.fc2.weight"), vec![d, self.fc2_in()]));
            v.push((b("mlp.fc2.bias"), vec![d]));
            if self.layer_scale {
                v.push((b("ls2.gamma"), vec![d]));
            }
        }
        v.push(("norm.weight".into(), vec![d]));
        v.push(("norm.bias".into(), vec![d]));
        if let Some(p) = self.projection {
            v.push(("pooler.dense.weight".into(), vec![p, d]));
            v.push(("pooler.dense.bias".into(), vec![p]));
        }
        v
    }
}
