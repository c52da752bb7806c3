//! SigLIP's two towers on candle, as transformers' `SiglipModel` computes them, built with
//! candle-nn layers through a `VarBuilder` with transformers' names:
//!
//! - vision: patch embedding (the conv as one [`Dense`], as in [`crate::vit`]) plus learned
//!   positions, no class token; pre-norm blocks (q/k/v/out projections, tanh-GELU MLP);
//!   `post_layernorm`; the attention-pooling head (one learned probe attends over the tokens,
//!   then `probe_out + MLP(LayerNorm(probe_out))`).
//! - text: token plus position embeddings, the same blocks attending over all positions (the
//!   serving passes no attention mask, so padding is attended to), `final_layer_norm`, the last
//!   position through the `head` Linear.
//!
//! Checked against transformers with the same seeded weights in encoders/tests/siglip_model.rs.

use super::config::{SiglipConfig, TowerConfig};
use crate::cpu_ops::softmax_last_dim;
use crate::dense::Dense;
use crate::error::{EncoderError, Result};
use candle_core::{DType, Device, Module, Tensor};
use candle_nn::{Embedding, LayerNorm, VarBuilder};

#[derive(Debug, Clone)]
struct Block {
    norm1: LayerNorm,
    q: Dense,
    k: Dense,
    v: Dense,
    out: Dense,
    norm2: LayerNorm,
    fc1: Dense,
    fc2: Dense,
}

/// Softmax over the last dimension, in f32 whatever the model's dtype (as transformers does).
fn softmax_f32(scores: &Tensor) -> Result<Tensor> {
    let dtype = scores.dtype();
    Ok(softmax_last_dim(&scores.to_dtype(DType::F32)?)?.to_dtype(dtype)?)
}

/// Multi-head attention of `q_in` `(B, Tq, D)` over `kv_in` `(B, Tk, D)` with the given
/// projections; → `(B, Tq, D)` before the output projection.
fn attend(q: &Tensor, k: &Tensor, v: &Tensor, heads: usize) -> Result<Tensor> {
    let (b, tq, d) = q.dims3()?;
    let tk = k.dim(1)?;
    let hd = d / heads;
    let split = |t: &Tensor, n: usize| t.reshape((b, n, heads, hd))?.transpose(1, 2)?.contiguous();
    // The scale 1/sqrt(head_dim) goes on the queries (Tq·D values) rather than the scores
    // (Tq·Tk per head).
    let q = (q * (1.0 / (hd as f64).sqrt()))?;
    let (q, k, v) = (split(&q, tq)?, split(k, tk)?, split(v, tk)?);
    let scores = q.matmul(&k.t()?)?;
    let att = softmax_f32(&scores)?;
    Ok(att.matmul(&v)?.transpose(1, 2)?.reshape((b, tq, d))?)
}

impl Block {
    fn load(cfg: &TowerConfig, vb: VarBuilder) -> Result<Self> {
        let (d, m) = (cfg.width, cfg.mlp_dim);
        let ln = |name: &str| candle_nn::layer_norm(d, cfg.layer_norm_eps, vb.pp(name));
        Ok(Block {
            norm1: ln("layer_norm1")?,
            q: Dense::load(d, d, true, vb.pp("self_attn.q_proj"))?,
            k: Dense::load(d, d, true, vb.pp("self_attn.k_proj"))?,
            v: Dense::load(d, d, true, vb.pp("self_attn.v_proj"))?,
            out: Dense::load(d, d, true, vb.pp("self_attn.out_proj"))?,
            norm2: ln("layer_norm2")?,
            fc1: Dense::load(d, m, true, vb.pp("mlp.fc1"))?,
            fc2: Dense::load(m, d, true, vb.pp("mlp.fc2"))?,
        })
    }

    /// `x`: `(B, T, D)`.
    fn forward(&self, x: &Tensor, heads: usize) -> Result<Tensor> {
        let (b, t, d) = x.dims3()?;
        let flat = x.reshape((b * t, d))?;
        let y = self.norm1.forward(&flat)?;
        let (q, k, v) = (self.q.forward(&y)?, self.k.forward(&y)?, self.v.forward(&y)?);
        let shape = |t2: Tensor| t2.reshape((b, t, d));
        let o = attend(&shape(q)?, &shape(k)?, &shape(v)?, heads)?.reshape((b * t, d))?;
        let flat = (flat + self.out.forward(&o)?)?;
        let y = self.fc2.forward(&self.fc1.forward_gelu_tanh(&self.norm2.forward(&flat)?)?)?;
        Ok((flat + y)?.reshape((b, t, d))?)
    }
}

/// The vision tower: `(B, 3, S, S)` pixels in [-1, 1] → `(B, width)` image embeddings (not
/// normalised).
#[derive(Debug, Clone)]
pub struct SiglipVision {
    cfg: TowerConfig,
    image_size: usize,
    patch_size: usize,
    patch: Dense,
    positions: Tensor,
    blocks: Vec<Block>,
    post_norm: LayerNorm,
    probe: Tensor,
    pool_q: Dense,
    pool_k: Dense,
    pool_v: Dense,
    pool_out: Dense,
    pool_norm: LayerNorm,
    pool_fc1: Dense,
    pool_fc2: Dense,
}

impl SiglipVision {
    /// Builds the tower from `vb` at `vision_model`.
    pub fn new(cfg: &SiglipConfig, vb: VarBuilder) -> Result<Self> {
        let t = cfg.vision.clone();
        let (d, m, p) = (t.width, t.mlp_dim, cfg.patch_size);
        let n = cfg.num_patches();
        let emb = vb.pp("embeddings");
        let pvb = emb.pp("patch_embedding");
        let patch = Dense::new(pvb.get((d, 3, p, p), "weight")?.reshape((d, 3 * p * p))?, Some(pvb.get(d, "bias")?))?;
        let positions = emb.pp("position_embedding").get((n, d), "weight")?;
        let blocks = (0..t.depth).map(|i| Block::load(&t, vb.pp(format!("encoder.layers.{i}")))).collect::<Result<Vec<_>>>()?;
        let post_norm = candle_nn::layer_norm(d, t.layer_norm_eps, vb.pp("post_layernorm"))?;
        let head = vb.pp("head");
        let in_w = head.get((3 * d, d), "attention.in_proj_weight")?;
        let in_b = head.get(3 * d, "attention.in_proj_bias")?;
        let part = |i: usize| -> Result<Dense> { Ok(Dense::new(in_w.narrow(0, i * d, d)?, Some(in_b.narrow(0, i * d, d)?))?) };
        Ok(SiglipVision {
            image_size: cfg.image_size,
            patch_size: p,
            patch,
            positions,
            blocks,
            post_norm,
            probe: head.get((1, 1, d), "probe")?,
            pool_q: part(0)?,
            pool_k: part(1)?,
            pool_v: part(2)?,
            pool_out: Dense::load(d, d, true, head.pp("attention.out_proj"))?,
            pool_norm: candle_nn::layer_norm(d, t.layer_norm_eps, head.pp("layernorm"))?,
            pool_fc1: Dense::load(d, m, true, head.pp("mlp.fc1"))?,
            pool_fc2: Dense::load(m, d, true, head.pp("mlp.fc2"))?,
            cfg: t,
        })
    }

    /// `x`: `(B, 3, S, S)` → `(B, width)`.
    pub fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let (b, c, h, w) = x.dims4()?;
        let s = self.image_size;
        if (c, h, w) != (3, s, s) {
            return Err(EncoderError::BadInput { index: 0, problem: format!("batch is {b}x{c}x{h}x{w}; SigLIP's vision tower takes Nx3x{s}x{s}") });
        }
        let (d, p) = (self.cfg.width, self.patch_size);
        let g = s / p;
        let dtype = self.positions.dtype();
        let patches = x.to_dtype(dtype)?.reshape((b, 3, g, p, g, p))?.permute((0, 2, 4, 1, 3, 5))?.contiguous()?.reshape((b * g * g, 3 * p * p))?;
        let mut x = self.patch.forward(&patches)?.reshape((b, g * g, d))?.broadcast_add(&self.positions)?;
        for blk in &self.blocks {
            x = blk.forward(&x, self.cfg.heads)?;
        }
        let n = g * g;
        let x = self.post_norm.forward(&x.reshape((b * n, d))?)?;
        // Attention pooling: the probe attends over the tokens.
        let q = self.pool_q.forward(&self.probe.reshape((1, d))?)?.reshape((1, 1, d))?.broadcast_as((b, 1, d))?.contiguous()?;
        let k = self.pool_k.forward(&x)?.reshape((b, n, d))?;
        let v = self.pool_v.forward(&x)?.reshape((b, n, d))?;
        let pooled = self.pool_out.forward(&attend(&q, &k, &v, self.cfg.heads)?.reshape((b, d))?)?;
        let mlp = self.pool_fc2.forward(&self.pool_fc1.forward_gelu_tanh(&self.pool_norm.forward(&pooled)?)?)?;
        Ok((pooled + mlp)?)
    }
}

/// The text tower: `(B, L)` token ids → `(B, width)` text embeddings (not normalised).
#[derive(Debug, Clone)]
pub struct SiglipText {
    cfg: TowerConfig,
    max_len: usize,
    vocab: usize,
    tokens: Embedding,
    positions: Tensor,
    blocks: Vec<Block>,
    final_norm: LayerNorm,
    head: Dense,
}

impl SiglipText {
    /// Builds the tower from `vb` at `text_model`.
    pub fn new(cfg: &SiglipConfig, vb: VarBuilder) -> Result<Self> {
        let t = cfg.text.clone();
        let d = t.width;
        let emb = vb.pp("embeddings");
        let tokens = candle_nn::embedding(cfg.vocab_size, d, emb.pp("token_embedding"))?;
        let positions = emb.pp("position_embedding").get((cfg.max_text_len, d), "weight")?;
        let blocks = (0..t.depth).map(|i| Block::load(&t, vb.pp(format!("encoder.layers.{i}")))).collect::<Result<Vec<_>>>()?;
        Ok(SiglipText {
            max_len: cfg.max_text_len,
            vocab: cfg.vocab_size,
            tokens,
            positions,
            blocks,
            final_norm: candle_nn::layer_norm(d, t.layer_norm_eps, vb.pp("final_layer_norm"))?,
            head: Dense::load(d, cfg.projection_dim, true, vb.pp("head"))?,
            cfg: t,
        })
    }

    /// `ids`: `(B, L)` u32 with L = the model's text length → `(B, projection)`.
    pub fn forward(&self, ids: &Tensor) -> Result<Tensor> {
        let (b, l) = ids.dims2()?;
        if l != self.max_len {
            return Err(EncoderError::BadText { index: 0, problem: format!("{l} token ids per text; SigLIP's text tower takes exactly {}", self.max_len) });
        }
        let max = ids.max_all()?.to_dtype(DType::U32)?.to_scalar::<u32>()? as usize;
        if max >= self.vocab {
            return Err(EncoderError::BadText { index: 0, problem: format!("token id {max} is beyond the vocabulary ({} ids)", self.vocab) });
        }
        let d = self.cfg.width;
        let mut x = self.tokens.forward(ids)?.broadcast_add(&self.positions)?;
        for blk in &self.blocks {
            x = blk.forward(&x, self.cfg.heads)?;
        }
        let last = x.narrow(1, l - 1, 1)?.reshape((b, d))?;
        Ok(self.head.forward(&self.final_norm.forward(&last)?)?)
    }
}

/// Both towers and the score parameters.
#[derive(Debug, Clone)]
pub struct Siglip {
    /// The vision tower.
    pub vision: SiglipVision,
    /// The text tower.
    pub text: SiglipText,
    /// `logit_scale` (its exponential multiplies the cosine).
    pub logit_scale: f32,
    /// `logit_bias`.
    pub logit_bias: f32,
    device: Device,
}

impl Siglip {
    /// Builds the model from a `VarBuilder` over transformers-named weights.
    pub fn new(cfg: &SiglipConfig, vb: VarBuilder) -> Result<Self> {
        let scalar = |name: &str| -> Result<f32> { Ok(vb.get(1, name)?.to_dtype(DType::F32)?.to_vec1::<f32>()?[0]) };
        Ok(Siglip {
            vision: SiglipVision::new(cfg, vb.pp("vision_model"))?,
            text: SiglipText::new(cfg, vb.pp("text_model"))?,
            logit_scale: scalar("logit_scale")?,
            logit_bias: scalar("logit_bias")?,
            device: vb.device().clone(),
        })
    }

    /// The device of the weights.
    pub fn device(&self) -> &Device {
        &self.device
    }

    /// Logits `(images, texts)`: `exp(logit_scale) · cos(image, text) + logit_bias`; the
    /// probability that a text matches an image is their sigmoid.
    pub fn logits(&self, image_embeddings: &Tensor, text_embeddings: &Tensor) -> Result<Tensor> {
        let unit = |t: &Tensor| -> candle_core::Result<Tensor> {
            let t = t.to_dtype(DType::F32)?;
            t.broadcast_div(&t.sqr()?.sum_keepdim(1)?.sqrt()?)
        };
        let cos = unit(image_embeddings)?.matmul(&unit(text_embeddings)?.t()?)?;
        Ok(((cos * f64::from(self.logit_scale.exp()))? + f64::from(self.logit_bias))?)
    }
}
