//! The ViT forward pass on candle, built with candle-nn layers through a `VarBuilder` with timm
//! names: patch embedding, class and register tokens, pre-norm blocks (`layer_norm`, fused-QKV
//! attention and an MLP, standard or packed SwiGLU, on the project's [`Dense`] layer, with
//! LayerScale where configured), final LayerNorm, class-token and/or mean pooling.
//!
//! The patch embedding is the conv's weight as one [`Dense`] over the flattened patches (the
//! same arithmetic as a conv with stride = kernel), not candle-nn's `conv2d`: candle 0.11's CPU
//! conv2d refuses bf16 ("unsupported dtype BF16 for op matmul"), and the dense form shares the
//! CPU f32 fast path.

use super::config::{Activation, MlpKind, Pooling, VitConfig};
use crate::cpu_ops::softmax_last_dim;
use crate::dense::Dense;
use crate::error::{EncoderError, Result};
use candle_core::{DType, Device, Module, Tensor, D};
use candle_nn::{LayerNorm, VarBuilder};

#[derive(Debug, Clone)]
struct Block {
    norm1: LayerNorm,
    qkv: Dense,
    proj: Dense,
    norm2: LayerNorm,
    fc1: Dense,
    fc2: Dense,
    /// LayerScale of the attention and MLP branches.
    ls: Option<(Tensor, Tensor)>,
}

/// A Vision Transformer ready to run.
#[derive(Debug, Clone)]
pub struct Vit {
    cfg: VitConfig,
    patch: Dense,
    cls_token: Tensor,
    reg_token: Option<Tensor>,
    pos_embed: Tensor,
    blocks: Vec<Block>,
    norm: LayerNorm,
    projection: Option<Dense>,
    device: Device,
    dtype: DType,
}

impl Vit {
    /// Builds the model from a `VarBuilder` over timm-named weights (see
    /// [`crate::VitWeights::var_builder`]); its device and dtype are the model's.
    pub fn new(cfg: VitConfig, vb: VarBuilder) -> Result<Self> {
        cfg.validate()?;
        let (d, m) = (cfg.width, cfg.mlp_dim);
        let ln = |vb: VarBuilder| candle_nn::layer_norm(d, cfg.layer_norm_eps, vb);
        let (c, p) = (cfg.channels, cfg.patch_size);
        let pvb = vb.pp("patch_embed.proj");
        let patch = Dense::new(pvb.get((d, c, p, p), "weight")?.reshape((d, c * p * p))?, Some(pvb.get(d, "bias")?))?;
        // The attention scale 1/sqrt(head_dim) is folded into the query rows of the QKV
        // projection (in f32, then cast to the model's dtype).
        let scale = 1.0 / (cfg.head_dim() as f64).sqrt();
        let vb32 = vb.to_dtype(DType::F32);
        let fold =
            |t: Tensor| -> candle_core::Result<Tensor> { Tensor::cat(&[(t.narrow(0, 0, d)? * scale)?, t.narrow(0, d, 2 * d)?], 0)?.to_dtype(vb.dtype()) };
        let blocks = (0..cfg.depth)
            .map(|i| {
                let b = vb.pp(format!("blocks.{i}"));
                let qkv = vb32.pp(format!("blocks.{i}.attn.qkv"));
                let qkv_b = if cfg.qkv_bias { Some(fold(qkv.get(3 * d, "bias")?)?) } else { None };
                Ok(Block {
                    norm1: ln(b.pp("norm1"))?,
                    qkv: Dense::new(fold(qkv.get((3 * d, d), "weight")?)?, qkv_b)?,
                    proj: Dense::load(d, d, true, b.pp("attn.proj"))?,
                    norm2: ln(b.pp("norm2"))?,
                    fc1: Dense::load(d, m, true, b.pp("mlp.fc1"))?,
                    fc2: Dense::load(cfg.fc2_in(), d, true, b.pp("mlp.fc2"))?,
                    ls: if cfg.layer_scale { Some((b.pp("ls1").get(d, "gamma")?, b.pp("ls2").get(d, "gamma")?)) } else { None },
                })
            })
            .collect::<Result<Vec<_>>>()?;
        let cls_token = vb.get((1, 1, d), "cls_token")?;
        let projection = cfg.projection.map(|p| Dense::load(d, p, true, vb.pp("pooler.dense"))).transpose()?;
        let reg_token = if cfg.reg_tokens > 0 { Some(vb.get((1, cfg.reg_tokens, d), "reg_token")?) } else { None };
        Ok(Vit {
            patch,
            reg_token,
            pos_embed: vb.get((1, cfg.pos_embed_len(), d), "pos_embed")?,
            blocks,
            norm: ln(vb.pp("norm"))?,
            projection,
            device: cls_token.device().clone(),
            dtype: cls_token.dtype(),
            cls_token,
            cfg,
        })
    }

    /// The architecture.
    pub fn config(&self) -> &VitConfig {
        &self.cfg
    }

    /// Device of the weights.
    pub fn device(&self) -> &Device {
        &self.device
    }

    /// Dtype of the weights.
    pub fn dtype(&self) -> DType {
        self.dtype
    }

    /// Softmax over the last dimension. candle's CPU kernel sums in the tensor's own dtype, which
    /// in bf16 loses too much over 197 terms; there, half-precision scores go through f32 (as
    /// the CUDA kernel does internally).
    fn softmax(&self, scores: &Tensor) -> Result<Tensor> {
        if self.device.is_cpu() && self.dtype != DType::F32 {
            Ok(softmax_last_dim(&scores.to_dtype(DType::F32)?)?.to_dtype(self.dtype)?)
        } else {
            Ok(softmax_last_dim(scores)?)
        }
    }

    /// `x`: `(B, C, H, W)` at the configured size, on the model's device → `(B, output_dim)` in
    /// the model's dtype.
    pub fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let c = &self.cfg;
        let (b, ch, h, w) = x.dims4()?;
        if (ch, h, w) != (c.channels, c.image_height, c.image_width) {
            return Err(EncoderError::BadInput {
                index: 0,
                problem: format!("batch is {b}x{ch}x{h}x{w}; this ViT takes Nx{}x{}x{}", c.channels, c.image_height, c.image_width),
            });
        }
        let x = x.to_dtype(self.dtype)?;
        let (d, n, p) = (c.width, c.num_patches(), c.patch_size);
        let (rows, cols) = c.grid();
        // (B, C, rows, p, cols, p) → (B, rows, cols, C, p, p): each row one flattened patch, as
        // the conv weight (D, C, p, p) is laid out.
        let patches = x.reshape((b, ch, rows, p, cols, p))?.permute((0, 2, 4, 1, 3, 5))?.contiguous()?.reshape((b * n, ch * p * p))?;
        let mut tokens = self.patch.forward(&patches)?.reshape((b, n, d))?;
        if c.no_embed_class {
            tokens = tokens.broadcast_add(&self.pos_embed)?;
        }
        // The class token, then the register tokens, then the patches (timm's order).
        let mut parts = vec![self.cls_token.broadcast_as((b, 1, d))?];
        if let Some(r) = &self.reg_token {
            parts.push(r.broadcast_as((b, c.reg_tokens, d))?);
        }
        parts.push(tokens);
        let mut x = Tensor::cat(&parts, 1)?;
        if !c.no_embed_class {
            x = x.broadcast_add(&self.pos_embed)?;
        }
        let prefix = c.prefix_tokens();
        let t = n + prefix;
        let (heads, hd) = (c.heads, c.head_dim());
        for blk in &self.blocks {
            let flat = x.reshape((b * t, d))?;
            let y = blk.norm1.forward(&flat)?;
            let qkv = blk.qkv.forward(&y)?.reshape((b, t, 3, heads, hd))?.permute((2, 0, 3, 1, 4))?.contiguous()?;
            let (q, k, v) = (qkv.get(0)?, qkv.get(1)?, qkv.get(2)?);
            let att = self.softmax(&q.matmul(&k.t()?)?)?;
            let o = att.matmul(&v)?.transpose(1, 2)?.reshape((b * t, d))?;
            let mut o = blk.proj.forward(&o)?;
            if let Some((ls1, _)) = &blk.ls {
                o = o.broadcast_mul(ls1)?;
            }
            let flat = (flat + o)?;
            let y = blk.norm2.forward(&flat)?;
            let h = match (c.mlp, c.activation) {
                (MlpKind::Standard, Activation::Gelu) => blk.fc1.forward_gelu(&y)?,
                (MlpKind::Standard, Activation::GeluTanh) => blk.fc1.forward_gelu_tanh(&y)?,
                (MlpKind::SwiGluPacked, _) => {
                    let h = blk.fc1.forward(&y)?;
                    let half = c.mlp_dim / 2;
                    (candle_nn::ops::silu(&h.narrow(1, 0, half)?)? * h.narrow(1, half, half)?)?
                }
            };
            let mut y = blk.fc2.forward(&h.contiguous()?)?;
            if let Some((_, ls2)) = &blk.ls {
                y = y.broadcast_mul(ls2)?;
            }
            x = (flat + y)?.reshape((b, t, d))?;
        }
        let x = self.norm.forward(&x.contiguous()?)?;
        let pooled = match c.pooling {
            Pooling::ClassToken => x.narrow(1, 0, 1)?.squeeze(1)?,
            Pooling::MeanPatchTokens => x.narrow(1, prefix, n)?.mean(D::Minus2)?,
            Pooling::ClassTokenAndMeanPatchTokens => Tensor::cat(&[x.narrow(1, 0, 1)?.squeeze(1)?, x.narrow(1, prefix, n)?.mean(D::Minus2)?], 1)?,
        };
        Ok(match &self.projection {
            Some(p) => p.forward(&pooled.contiguous()?)?,
            None => pooled,
        })
    }
}

impl Module for Vit {
    fn forward(&self, xs: &Tensor) -> candle_core::Result<Tensor> {
        Vit::forward(self, xs).map_err(|e| candle_core::Error::Msg(e.to_string()))
    }
}
