//! CPU speed-ups shared by every model: one forward pass per rayon thread over slices of the
//! batch ([`forward_in_slices`]), and kernels for the two element-wise hot spots of a
//! transformer in f32, written so that the compiler vectorises them (no branches, no libm calls
//! in the inner loops): GELU with the exact (erf) form, fused with the bias add of the MLP's
//! first layer, and softmax over the last dimension. candle's own CPU versions call scalar
//! `erf`/`exp` per element, which cost ~15% of a forward pass. Other devices and dtypes use
//! candle's kernels.

use crate::error::{EncoderError, Result as EncResult};
use candle_core::{CpuStorage, CustomOp1, CustomOp2, Layout, Result, Shape, Tensor};
use rayon::prelude::*;

/// Runs `forward` on `batch` `(N, ...)`. On CPU with more than one rayon thread, as one
/// forward pass per thread over slices of at most 4 inputs (which keeps each pass's
/// intermediates cache-sized): on 2 cores this scales better than splitting every small matrix
/// product between threads. Elsewhere, one pass over the whole batch.
pub(crate) fn forward_in_slices(batch: &Tensor, forward: impl Fn(&Tensor) -> EncResult<Tensor> + Sync) -> EncResult<Tensor> {
    let n = batch.dims().first().copied().unwrap_or(0);
    if n == 0 {
        return Err(EncoderError::EmptyBatch);
    }
    let threads = rayon::current_num_threads();
    if !batch.device().is_cpu() || threads == 1 || n < threads {
        return forward(batch);
    }
    let per = n.div_ceil(threads).min(4);
    let parts: Vec<Tensor> =
        (0..n.div_ceil(per)).into_par_iter().map(|i| forward(&batch.narrow(0, i * per, per.min(n - i * per))?)).collect::<EncResult<_>>()?;
    Ok(Tensor::cat(&parts, 0)?)
}

/// Rows of work per rayon task.
const CHUNK: usize = 16 * 1024;

/// e^x for x ≤ 0 (softmax arguments), relative error ≈ 2e-7: x = k ln2 + r, |r| ≤ ln2/2,
/// e^r by a degree-6 Taylor polynomial, 2^k through the exponent bits.
#[inline(always)]
fn exp_neg(x: f32) -> f32 {
    let x = x.max(-87.0);
    let k = (x * std::f32::consts::LOG2_E).round();
    // ln 2 split in two so that k ln2 is subtracted without rounding error.
    let r = x - k * 0.693_145_75 - k * 1.428_606_8e-6;
    let p = 1.0 + r * (1.0 + r * (0.5 + r * (1.0 / 6.0 + r * (1.0 / 24.0 + r * (1.0 / 120.0 + r * (1.0 / 720.0))))));
    p * f32::from_bits(((k as i32 + 127) as u32) << 23)
}

/// erf(x), |error| ≈ 1e-7: the odd rational approximation x·P(x²)/Q(x²) on [-4, 4] used by
/// XLA and Eigen for f32 (coefficients as published there), saturating beyond.
#[inline(always)]
fn erf(x: f32) -> f32 {
    let x = x.clamp(-4.0, 4.0);
    let x2 = x * x;
    let mut p = -2.726_142_3e-10f32;
    p = p * x2 + 2.770_681_4e-08;
    p = p * x2 - 2.101_024e-06;
    p = p * x2 - 5.692_506_4e-05;
    p = p * x2 - 7.349_906_3e-04;
    p = p * x2 - 2.954_6e-3;
    p = p * x2 - 1.609_603_3e-02;
    let mut q = -1.456_607_2e-05f32;
    q = q * x2 - 2.133_740_6e-04;
    q = q * x2 - 1.682_827e-03;
    q = q * x2 - 7.373_329e-03;
    q = q * x2 - 1.426_474e-02;
    x * p / q
}

#[inline(always)]
fn gelu(x: f32) -> f32 {
    0.5 * x * (1.0 + erf(x * std::f32::consts::FRAC_1_SQRT_2))
}

/// GELU's tanh approximation (PyTorch `approximate="tanh"`, transformers
/// `gelu_pytorch_tanh`): `0.5 x (1 + tanh(sqrt(2/π) (x + 0.044715 x³)))`, with
/// `tanh(u) = sign(u) (1 − e^{−2|u|}) / (1 + e^{−2|u|})` on [`exp_neg`] (absolute error ≈ 2e-7).
#[inline(always)]
fn gelu_tanh(x: f32) -> f32 {
    const SQRT_2_OVER_PI: f32 = 0.797_884_6;
    let u = SQRT_2_OVER_PI * (x + 0.044_715 * x * x * x);
    let e = exp_neg(-2.0 * u.abs());
    let t = ((1.0 - e) / (1.0 + e)).copysign(u);
    0.5 * x * (1.0 + t)
}

/// Rows of `gelu(x + b)`.
#[inline(always)]
fn bias_gelu_rows(o: &mut [f32], x: &[f32], b: &[f32]) {
    for (o, x) in o.chunks_exact_mut(b.len()).zip(x.chunks_exact(b.len())) {
        for ((o, x), b) in o.iter_mut().zip(x).zip(b) {
            *o = gelu(x + b);
        }
    }
}

/// Rows of `gelu_tanh(x + b)`.
#[inline(always)]
fn bias_gelu_tanh_rows(o: &mut [f32], x: &[f32], b: &[f32]) {
    for (o, x) in o.chunks_exact_mut(b.len()).zip(x.chunks_exact(b.len())) {
        for ((o, x), b) in o.iter_mut().zip(x).zip(b) {
            *o = gelu_tanh(x + b);
        }
    }
}

/// Rows of softmax, each `n` long. Max and sum use 16 lanes of partial results so that the
/// reductions vectorise (float addition is not reassociated by the compiler on its own).
#[inline(always)]
fn softmax_rows(o: &mut [f32], x: &[f32], n: usize) {
    const L: usize = 16;
    for (o, x) in o.chunks_exact_mut(n).zip(x.chunks_exact(n)) {
        let mut lanes = [f32::NEG_INFINITY; L];
        let mut chunks = x.chunks_exact(L);
        for c in &mut chunks {
            for (m, v) in lanes.iter_mut().zip(c) {
                *m = m.max(*v);
            }
        }
        let max = chunks.remainder().iter().chain(lanes.iter()).copied().fold(f32::NEG_INFINITY, f32::max);
        for (o, x) in o.iter_mut().zip(x) {
            *o = exp_neg(x - max);
        }
        let mut lanes = [0f32; L];
        let mut chunks = o.chunks_exact(L);
        for c in &mut chunks {
            for (s, v) in lanes.iter_mut().zip(c) {
                *s += v;
            }
        }
        let sum: f32 = chunks.remainder().iter().sum::<f32>() + lanes.iter().sum::<f32>();
        let inv = 1.0 / sum;
        o.iter_mut().for_each(|v| *v *= inv);
    }
}

/// Wraps a row kernel in copies compiled for AVX-512 and for AVX2+FMA, picked at run time (the
/// crate itself is built for baseline x86-64, where these loops vectorise poorly and `round`
/// becomes a library call).
macro_rules! multiversion {
    ($name:ident => $kernel:ident($($arg:ident: $ty:ty),*)) => {
        fn $name($($arg: $ty),*) {
            #[cfg(target_arch = "x86_64")]
            {
                #[target_feature(enable = "avx512f,avx512vl,avx2,fma,sse4.1")]
                unsafe fn v4($($arg: $ty),*) {
                    $kernel($($arg),*)
                }
                #[target_feature(enable = "avx2,fma,sse4.1")]
                unsafe fn v3($($arg: $ty),*) {
                    $kernel($($arg),*)
                }
                if std::is_x86_feature_detected!("avx512f") && std::is_x86_feature_detected!("avx512vl") {
                    // SAFETY: the CPU has the features v4 was compiled for.
                    return unsafe { v4($($arg),*) };
                }
                if std::is_x86_feature_detected!("avx2") && std::is_x86_feature_detected!("fma") {
                    // SAFETY: the CPU has the features v3 was compiled for.
                    return unsafe { v3($($arg),*) };
                }
            }
            $kernel($($arg),*)
        }
    };
}

pub(crate) use multiversion;

multiversion!(bias_gelu_dispatch => bias_gelu_rows(o: &mut [f32], x: &[f32], b: &[f32]));
multiversion!(bias_gelu_tanh_dispatch => bias_gelu_tanh_rows(o: &mut [f32], x: &[f32], b: &[f32]));
multiversion!(softmax_dispatch => softmax_rows(o: &mut [f32], x: &[f32], n: usize));

fn contiguous<'a>(s: &'a CpuStorage, l: &Layout, what: &str) -> Result<&'a [f32]> {
    let CpuStorage::F32(v) = s else { candle_core::bail!("{what}: f32 only") };
    match l.contiguous_offsets() {
        Some((a, b)) => Ok(&v[a..b]),
        None => candle_core::bail!("{what}: input must be contiguous"),
    }
}

/// `gelu(x + bias)` with `bias` broadcast over rows: the exact (erf) form, or with `tanh` its
/// tanh approximation.
struct BiasGelu {
    tanh: bool,
}

impl CustomOp2 for BiasGelu {
    fn name(&self) -> &'static str {
        if self.tanh {
            "bias-gelu-tanh-f32"
        } else {
            "bias-gelu-erf-f32"
        }
    }

    fn cpu_fwd(&self, s1: &CpuStorage, l1: &Layout, s2: &CpuStorage, l2: &Layout) -> Result<(CpuStorage, Shape)> {
        let x = contiguous(s1, l1, "bias-gelu")?;
        let b = contiguous(s2, l2, "bias-gelu")?;
        let n = b.len();
        if n == 0 || x.len() % n != 0 {
            candle_core::bail!("bias-gelu: bias of {n} does not divide {} values", x.len());
        }
        let mut out = vec![0f32; x.len()];
        let rows_per_task = (CHUNK / n).max(1) * n;
        out.par_chunks_mut(rows_per_task).zip(x.par_chunks(rows_per_task)).for_each(|(o, x)| {
            if self.tanh {
                bias_gelu_tanh_dispatch(o, x, b)
            } else {
                bias_gelu_dispatch(o, x, b)
            }
        });
        Ok((CpuStorage::F32(out), l1.shape().clone()))
    }
}

/// Softmax over the last dimension.
struct Softmax;

impl CustomOp1 for Softmax {
    fn name(&self) -> &'static str {
        "softmax-last-dim-f32"
    }

    fn cpu_fwd(&self, s: &CpuStorage, l: &Layout) -> Result<(CpuStorage, Shape)> {
        let x = contiguous(s, l, "softmax")?;
        let n = l.shape().dims().last().copied().unwrap_or(1);
        let mut out = vec![0f32; x.len()];
        let rows_per_task = (CHUNK / n).max(1) * n;
        out.par_chunks_mut(rows_per_task).zip(x.par_chunks(rows_per_task)).for_each(|(o, x)| softmax_dispatch(o, x, n));
        Ok((CpuStorage::F32(out), l.shape().clone()))
    }
}

/// `gelu_erf(x + bias)`; the fused kernel on CPU f32, candle's ops elsewhere.
pub(crate) fn bias_gelu(x: &Tensor, bias: &Tensor) -> Result<Tensor> {
    if x.device().is_cpu() && x.dtype() == candle_core::DType::F32 && bias.dtype() == candle_core::DType::F32 {
        x.contiguous()?.apply_op2_no_bwd(&bias.contiguous()?, &BiasGelu { tanh: false })
    } else {
        x.broadcast_add(bias)?.gelu_erf()
    }
}

/// `gelu_tanh(x + bias)`; the fused kernel on CPU f32, candle's ops (its `gelu` is the tanh
/// form) elsewhere.
pub(crate) fn bias_gelu_tanh(x: &Tensor, bias: &Tensor) -> Result<Tensor> {
    if x.device().is_cpu() && x.dtype() == candle_core::DType::F32 && bias.dtype() == candle_core::DType::F32 {
        x.contiguous()?.apply_op2_no_bwd(&bias.contiguous()?, &BiasGelu { tanh: true })
    } else {
        x.broadcast_add(bias)?.gelu()
    }
}

/// Softmax over the last dimension; the vectorised kernel on CPU f32, candle's elsewhere.
pub(crate) fn softmax_last_dim(x: &Tensor) -> Result<Tensor> {
    if x.device().is_cpu() && x.dtype() == candle_core::DType::F32 {
        x.contiguous()?.apply_op1_no_bwd(&Softmax)
    } else {
        candle_nn::ops::softmax_last_dim(x)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::Device;

    #[test]
    fn gelu_tanh_matches_its_formula() {
        let mut worst = 0f64;
        for i in -20_000..=20_000 {
            let x = i as f32 * 1e-3;
            let xd = f64::from(x);
            let want = 0.5 * xd * (1.0 + ((2.0 / std::f64::consts::PI).sqrt() * (xd + 0.044715 * xd.powi(3))).tanh());
            worst = worst.max((f64::from(gelu_tanh(x)) - want).abs() / want.abs().max(1.0));
        }
        assert!(worst < 1e-6, "gelu_tanh error {worst:e}");
    }

    #[test]
    fn kernels_match_libm() {
        let mut worst_exp = 0f64;
        let mut worst_erf = 0f64;
        for i in 0..200_000 {
            let x = -30.0 + i as f32 * 1.5e-4;
            let e = f64::from(exp_neg(x));
            worst_exp = worst_exp.max(((e - f64::from(x).exp()) / f64::from(x).exp()).abs());
            let y = -6.0 + i as f32 * 6e-5;
            worst_erf = worst_erf.max((f64::from(erf(y)) - libm_erf(f64::from(y))).abs());
        }
        assert!(worst_exp < 5e-7, "exp relative error {worst_exp:e}");
        assert!(worst_erf < 5e-7, "erf absolute error {worst_erf:e}");
    }

    /// erf in f64 by its Taylor series (|x| < 3) and continued fraction (beyond): a reference
    /// independent of the approximation under test.
    fn libm_erf(x: f64) -> f64 {
        if x.abs() < 3.0 {
            let (mut term, mut sum, mut n) = (x, x, 0.0);
            while term.abs() > 1e-17 {
                n += 1.0;
                term *= -x * x / n;
                sum += term / (2.0 * n + 1.0);
            }
            sum * 2.0 / std::f64::consts::PI.sqrt()
        } else {
            let z = x.abs();
            let mut f = 0.0;
            for k in (1..60).rev() {
                f = f64::from(k) / 2.0 / (z + f);
            }
            let erfc = (-z * z).exp() / std::f64::consts::PI.sqrt() / (z + f);
            (1.0 - erfc).copysign(x)
        }
    }

    #[test]
    fn ops_match_candle() {
        let x = Tensor::arange(0f32, 6000.0, &Device::Cpu).unwrap().affine(0.003, -9.0).unwrap().reshape((20, 300)).unwrap();
        let b = Tensor::arange(0f32, 300.0, &Device::Cpu).unwrap().affine(0.01, -1.5).unwrap();
        let ours = bias_gelu(&x, &b).unwrap();
        let theirs = x.broadcast_add(&b).unwrap().gelu_erf().unwrap();
        let d = (ours - theirs).unwrap().abs().unwrap().max_all().unwrap().to_scalar::<f32>().unwrap();
        assert!(d < 2e-6, "gelu differs by {d}");
        let ours = softmax_last_dim(&x).unwrap();
        let theirs = candle_nn::ops::softmax_last_dim(&x).unwrap();
        let d = (ours - theirs).unwrap().abs().unwrap().max_all().unwrap().to_scalar::<f32>().unwrap();
        assert!(d < 1e-7, "softmax differs by {d}");
    }
}
