//! The ViT forward pass on candle: patch embedding as one matrix product, pre-norm blocks with
//! fused-QKV attention, final LayerNorm, class-token or mean pooling.

use super::config::{Pooling, VitConfig};
use super::weights::VitWeights;
use crate::error::{EncoderError, Result};
use candle_core::{DType, Device, Module, Tensor, D};
use super::cpu_ops::{bias_gelu, softmax_last_dim};
use candle_nn::ops::layer_norm;

/// A dense layer `x W^T + b`, weights kept transposed for the matrix product.
#[derive(Debug, Clone)]
struct Dense {
    /// `(in, out)`, contiguous.
    wt: Tensor,
    b: Option<Tensor>,
}

impl Dense {
    fn new(w: &Tensor, b: Option<&Tensor>) -> Result<Self> {
        Ok(Dense { wt: w.t()?.contiguous()?, b: b.cloned() })
    }

    /// `gelu(x W^T + b)`, bias and activation fused where a kernel exists.
    fn forward_gelu(&self, x: &Tensor) -> Result<Tensor> {
        let y = x.matmul(&self.wt)?;
        Ok(match &self.b {
            Some(b) => bias_gelu(&y, b)?,
            None => y.gelu_erf()?,
        })
    }

    /// `x`: `(rows, in)` → `(rows, out)`.
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let y = x.matmul(&self.wt)?;
        Ok(match &self.b {
            Some(b) => y.broadcast_add(b)?,
            None => y,
        })
    }
}

#[derive(Debug, Clone)]
struct Norm {
    w: Tensor,
    b: Tensor,
    eps: f32,
}

impl Norm {
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        Ok(layer_norm(x, &self.w, &self.b, self.eps)?)
    }
}

#[derive(Debug, Clone)]
struct Block {
    norm1: Norm,
    qkv: Dense,
    proj: Dense,
    norm2: Norm,
    fc1: Dense,
    fc2: Dense,
}

/// A Vision Transformer ready to run.
#[derive(Debug, Clone)]
pub struct Vit {
    cfg: VitConfig,
    patch: Dense,
    cls_token: Tensor,
    pos_embed: Tensor,
    blocks: Vec<Block>,
    norm: Norm,
    device: Device,
    dtype: DType,
}

impl Vit {
    /// Builds the model from weights (already on their device and dtype).
    pub fn new(cfg: VitConfig, weights: &VitWeights) -> Result<Self> {
        cfg.validate()?;
        let w = |n: &str| weights.get(n).clone();
        let eps = cfg.layer_norm_eps as f32;
        let norm = |p: &str| Norm { w: w(&format!("{p}.weight")), b: w(&format!("{p}.bias")), eps };
        let d = cfg.width;
        let patch_w = w("patch_embed.proj.weight").reshape((d, cfg.channels * cfg.patch_size * cfg.patch_size))?;
        // Fold the attention scale 1/sqrt(head_dim) into the query rows of the QKV projection.
        let scale = 1.0 / (cfg.head_dim() as f64).sqrt();
        let qkv_scale = Tensor::cat(
            &[
                Tensor::full(scale as f32, (d, 1), &Device::Cpu)?,
                Tensor::ones((2 * d, 1), DType::F32, &Device::Cpu)?,
            ],
            0,
        )?;
        let blocks = (0..cfg.depth)
            .map(|i| {
                let p = |s: &str| format!("blocks.{i}.{s}");
                let qkv_w = w(&p("attn.qkv.weight"));
                let s = qkv_scale.to_device(qkv_w.device())?.to_dtype(DType::F32)?;
                let qkv_w = qkv_w.to_dtype(DType::F32)?.broadcast_mul(&s)?.to_dtype(qkv_w.dtype())?;
                let qkv_b = if cfg.qkv_bias {
                    let b = w(&p("attn.qkv.bias"));
                    Some(b.to_dtype(DType::F32)?.broadcast_mul(&s.flatten_all()?)?.to_dtype(b.dtype())?)
                } else {
                    None
                };
                Ok(Block {
                    norm1: norm(&p("norm1")),
                    qkv: Dense::new(&qkv_w, qkv_b.as_ref())?,
                    proj: Dense::new(&w(&p("attn.proj.weight")), Some(&w(&p("attn.proj.bias"))))?,
                    norm2: norm(&p("norm2")),
                    fc1: Dense::new(&w(&p("mlp.fc1.weight")), Some(&w(&p("mlp.fc1.bias"))))?,
                    fc2: Dense::new(&w(&p("mlp.fc2.weight")), Some(&w(&p("mlp.fc2.bias"))))?,
                })
            })
            .collect::<Result<Vec<_>>>()?;
        let cls = w("cls_token");
        Ok(Vit {
            patch: Dense::new(&patch_w, Some(&w("patch_embed.proj.bias")))?,
            cls_token: cls.reshape((1, 1, d))?,
            pos_embed: w("pos_embed"),
            blocks,
            norm: norm("norm"),
            device: cls.device().clone(),
            dtype: cls.dtype(),
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

    /// `x`: `(B, C, H, W)` at the configured size, on the model's device → `(B, width)` in the
    /// model's dtype.
    pub fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let c = &self.cfg;
        let (b, ch, h, w) = x.dims4()?;
        if (ch, h, w) != (c.channels, c.image_size, c.image_size) {
            return Err(EncoderError::BadInput {
                index: 0,
                problem: format!(
                    "batch is {b}x{ch}x{h}x{w}; this ViT takes Nx{}x{}x{}",
                    c.channels, c.image_size, c.image_size
                ),
            });
        }
        let x = x.to_dtype(self.dtype)?;
        let (g, p, d) = (c.grid(), c.patch_size, c.width);
        let n = c.num_patches();
        // (B, C, g, p, g, p) → (B, g, g, C, p, p): each row one flattened patch, as the conv
        // weight (D, C, p, p) is laid out.
        let patches = x.reshape((b, ch, g, p, g, p))?.permute((0, 2, 4, 1, 3, 5))?.contiguous()?.reshape((b * n, ch * p * p))?;
        let tokens = self.patch.forward(&patches)?.reshape((b, n, d))?;
        let cls = self.cls_token.broadcast_as((b, 1, d))?;
        let mut x = Tensor::cat(&[&cls, &tokens], 1)?.broadcast_add(&self.pos_embed)?;
        let t = n + 1;
        let (heads, hd) = (c.heads, c.head_dim());
        for blk in &self.blocks {
            let flat = x.reshape((b * t, d))?;
            let y = blk.norm1.forward(&flat)?;
            let qkv = blk.qkv.forward(&y)?.reshape((b, t, 3, heads, hd))?.permute((2, 0, 3, 1, 4))?.contiguous()?;
            let (q, k, v) = (qkv.get(0)?, qkv.get(1)?, qkv.get(2)?);
            let att = self.softmax(&q.matmul(&k.t()?)?)?;
            let o = att.matmul(&v)?.transpose(1, 2)?.reshape((b * t, d))?;
            let flat = (flat + blk.proj.forward(&o)?)?;
            let y = blk.norm2.forward(&flat)?;
            let y = blk.fc2.forward(&blk.fc1.forward_gelu(&y)?)?;
            x = (flat + y)?.reshape((b, t, d))?;
        }
        let x = self.norm.forward(&x)?;
        Ok(match c.pooling {
            Pooling::ClassToken => x.narrow(1, 0, 1)?.squeeze(1)?,
            Pooling::MeanPatchTokens => x.narrow(1, 1, n)?.mean(D::Minus2)?,
        })
    }
}

impl Module for Vit {
    fn forward(&self, xs: &Tensor) -> candle_core::Result<Tensor> {
        Vit::forward(self, xs).map_err(|e| candle_core::Error::Msg(e.to_string()))
    }
}
