//! The project's one dense layer, `x W^T + b`, that every model builds its linear layers with.
//!
//! It is candle-nn's `Linear` (loaded through a `VarBuilder`), with a CPU f32 path that keeps
//! the weight transposed and contiguous for gemm and fuses the bias with GELU
//! ([`crate::cpu_ops`]); other devices and dtypes run candle-nn's stock `Linear`. A bf16 CPU path
//! belongs here too, when there is one.

use crate::cpu_ops::{bias_gelu, bias_gelu_tanh};
use candle_core::{DType, Module, Result, Tensor};
use candle_nn::{Linear, VarBuilder};

/// A dense layer.
#[derive(Debug, Clone)]
pub struct Dense {
    linear: Linear,
    /// CPU f32 only: the weight as `(in, out)`, contiguous.
    wt: Option<Tensor>,
}

impl Dense {
    /// Loads `weight` `(out, in)` and `bias` `(out)` (if `bias`) from `vb`.
    pub fn load(in_dim: usize, out_dim: usize, bias: bool, vb: VarBuilder) -> Result<Self> {
        let linear = if bias { candle_nn::linear(in_dim, out_dim, vb)? } else { candle_nn::linear_no_bias(in_dim, out_dim, vb)? };
        Self::from_linear(linear)
    }

    /// From explicit tensors (e.g. a weight rescaled after loading).
    pub fn new(weight: Tensor, bias: Option<Tensor>) -> Result<Self> {
        Self::from_linear(Linear::new(weight, bias))
    }

    fn from_linear(linear: Linear) -> Result<Self> {
        let w = linear.weight();
        let wt = if w.device().is_cpu() && w.dtype() == DType::F32 { Some(w.t()?.contiguous()?) } else { None };
        Ok(Dense { linear, wt })
    }

    /// `x`: `(rows, in)` → `(rows, out)`.
    pub fn forward(&self, x: &Tensor) -> Result<Tensor> {
        match (&self.wt, self.linear.bias()) {
            (Some(wt), Some(b)) => x.matmul(wt)?.broadcast_add(b),
            (Some(wt), None) => x.matmul(wt),
            (None, _) => self.linear.forward(x),
        }
    }

    /// `gelu_tanh(x W^T + b)` (GELU's tanh approximation), bias and activation fused on CPU f32.
    pub fn forward_gelu_tanh(&self, x: &Tensor) -> Result<Tensor> {
        match (&self.wt, self.linear.bias()) {
            (Some(wt), Some(b)) => bias_gelu_tanh(&x.matmul(wt)?, b),
            _ => self.forward(x)?.gelu(),
        }
    }

    /// `gelu_erf(x W^T + b)`, bias and activation fused on CPU f32.
    pub fn forward_gelu(&self, x: &Tensor) -> Result<Tensor> {
        match (&self.wt, self.linear.bias()) {
            (Some(wt), Some(b)) => bias_gelu(&x.matmul(wt)?, b),
            _ => self.forward(x)?.gelu_erf(),
        }
    }
}
