//! The front end's CPU path: per clip, on rayon, with a real FFT (realfft), each mel triangle as
//! the few bins it covers, PCEN's moving average as its recursion, and the resize as two taps
//! per row, all in f64 (cast to f32 at the end). Same steps and order as the tensor path in
//! `frontend.rs` and the reference; most of the tensor path's matrices are zeros, which
//! is why this is faster on a CPU.

use super::frontend_config::FrontEndConfig;
use crate::cpu_ops::multiversion;
use realfft::{RealFftPlanner, RealToComplex};
use std::sync::Arc;

/// The CPU path's tables.
pub(super) struct CpuPlan {
    fft: Arc<dyn RealToComplex<f64>>,
    window: Vec<f64>,
    /// The mel matrix's nonzero weights as (bin, band, weight), by bin: each band sums its
    /// bins in ascending order, as a dense product does.
    weights: Vec<(usize, usize, f64)>,
    /// Per output row: the two source rows and their weights.
    taps: Vec<(usize, usize, f32, f32)>,
}

impl std::fmt::Debug for CpuPlan {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CpuPlan").field("fft_len", &self.fft.len()).field("weights", &self.weights.len()).finish()
    }
}

impl CpuPlan {
    pub(super) fn new(cfg: &FrontEndConfig, mel: &[f64], resize: &[f32]) -> Self {
        let fft = RealFftPlanner::<f64>::new().plan_fft_forward(cfg.fft_length);
        let fl = cfg.frame_length;
        let window = (0..fl).map(|t| 0.5 - 0.5 * (2.0 * std::f64::consts::PI * t as f64 / fl as f64).cos()).collect();
        let (bins, mels, frames) = (cfg.bins(), cfg.mel_bins, cfg.frames());
        let weights = (0..bins).flat_map(|b| (0..mels).map(move |j| (b, j, mel[b * mels + j]))).filter(|(_, _, w)| *w != 0.0).collect();
        let taps = (0..cfg.out_height)
            .map(|d| {
                let row = &resize[d * frames..(d + 1) * frames];
                let i0 = row.iter().position(|w| *w != 0.0).unwrap_or(0);
                let i1 = (i0 + 1).min(frames - 1);
                if i1 == i0 {
                    (i0, i0, row[i0], 0.0)
                } else {
                    (i0, i1, row[i0], row[i1])
                }
            })
            .collect();
        CpuPlan { fft, window, weights, taps }
    }

    /// One clip → its `(frames, mel_bins)` mel-PCEN, in the order of the reference: scaling,
    /// windowed frames, real FFT, power, mel sums, then PCEN with its recursive moving average.
    /// Computed in f64 (the FFT is cheap here): in the silent frames of a padded clip, f32
    /// rounding noise in the power spectrum would come through PCEN's `x / M^0.8` at ~1e-3.
    pub(super) fn mel_pcen(&self, c: &FrontEndConfig, x: &[f32], out: &mut [f32]) {
        mel_pcen_dispatch(self, c, x, out)
    }
}

multiversion!(mel_pcen_dispatch => mel_pcen_kernel(plan: &CpuPlan, c: &FrontEndConfig, x: &[f32], out: &mut [f32]));

/// [`CpuPlan::mel_pcen`]'s body, inlined into copies built for AVX2+FMA and AVX-512 (2.6×
/// faster than baseline x86-64 here, where `round` is a library call and f64 vectors are 2 wide).
#[inline(always)]
fn mel_pcen_kernel(plan: &CpuPlan, c: &FrontEndConfig, x: &[f32], out: &mut [f32]) {
    let (lo, hi) = x.iter().fold((f32::MAX, f32::MIN), |(a, b), v| (a.min(*v), b.max(*v)));
    let (lo, hi) = (f64::from(lo), f64::from(hi));
    let range = (hi - lo) + 1e-8;
    let (frames, step, fl, mels) = (c.frames(), c.frame_step, c.frame_length, c.mel_bins);
    // Scaled, then zero-padded at the end (TensorFlow's pad_end) to the last frame's end.
    let mut scaled = vec![0f64; ((frames - 1) * step + fl).max(x.len())];
    for (s, v) in scaled.iter_mut().zip(x) {
        *s = (f64::from(*v) - lo) / range * 2.0 - 1.0;
    }
    let mut input = plan.fft.make_input_vec();
    let mut spectrum = plan.fft.make_output_vec();
    let mut scratch = plan.fft.make_scratch_vec();
    let mut power = vec![0f64; spectrum.len()];
    let mut mel = vec![0f64; frames * mels];
    for f in 0..frames {
        for ((i, s), w) in input.iter_mut().zip(&scaled[f * step..f * step + fl]).zip(&plan.window) {
            *i = s * w;
        }
        // The lengths come from the plan itself, so processing cannot fail.
        let _ = plan.fft.process_with_scratch(&mut input, &mut spectrum, &mut scratch);
        for (p, s) in power.iter_mut().zip(&spectrum) {
            *p = s.re * s.re + s.im * s.im;
        }
        let row = &mut mel[f * mels..(f + 1) * mels];
        for (b, j, w) in &plan.weights {
            row[*j] += power[*b] * w;
        }
    }
    let (s, alpha, delta, floor) = (c.pcen_smooth, c.pcen_alpha, c.pcen_delta, c.pcen_floor);
    let (inv_root, offset) = (1.0 / c.pcen_root, c.pcen_delta.powf(1.0 / c.pcen_root));
    let mut smooth: Vec<f64> = mel[..mels].to_vec();
    let mut gain = vec![0f64; mels];
    for f in 0..frames {
        let row = &mel[f * mels..(f + 1) * mels];
        if f > 0 {
            for (m, x) in smooth.iter_mut().zip(row) {
                *m = s * x + (1.0 - s) * *m;
            }
        }
        for (g, m) in gain.iter_mut().zip(&smooth) {
            *g = pow_positive(floor + m, -alpha);
        }
        for ((o, x), g) in out[f * mels..(f + 1) * mels].iter_mut().zip(row).zip(&gain) {
            let y = x * g + delta;
            *o = ((if inv_root == 0.5 { y.sqrt() } else { y.powf(inv_root) }) - offset) as f32;
        }
    }
}

impl CpuPlan {
    /// `(frames, mels)` → `(out_height, mels)`, two taps per row.
    pub(super) fn resize(&self, mels: usize, pcen: &[f32], out: &mut [f32]) {
        for (row, (i0, i1, w0, w1)) in out.chunks_exact_mut(mels).zip(&self.taps) {
            let (a, b) = (&pcen[i0 * mels..(i0 + 1) * mels], &pcen[i1 * mels..(i1 + 1) * mels]);
            for ((o, x), y) in row.iter_mut().zip(a).zip(b) {
                *o = w0 * x + w1 * y;
            }
        }
    }
}

/// `x^a` for finite `x > 0` as `e^(a ln x)`, relative error below 1e-11 (the result is used in
/// f32), in straight-line code the compiler vectorises: libm's `pow` took a third of the front
/// end's time (perf, 2 cores). `ln x`: `x = 2^e m` with `m` in [√½, √2), `ln m = 2 atanh(s)`,
/// `s = (m − 1)/(m + 1)`, `|s| ≤ 0.172`, by its series to `s^13`. `e^y`: `y = k ln2 + r`,
/// `|r| ≤ ln2/2`, Taylor to `r^10`, `2^k` through the exponent bits.
#[inline(always)]
pub(super) fn pow_positive(x: f64, a: f64) -> f64 {
    const LN2_HI: f64 = 0.693_147_180_369_123_8;
    const LN2_LO: f64 = 1.908_214_929_270_587_7e-10;
    // Integer ↔ float conversions go through the 2^52 trick: AVX2 has no vector instruction
    // for f64 ↔ i64, and one scalar conversion stops the whole loop from vectorising.
    const MAGIC: f64 = 4_503_599_627_370_496.0; // 2^52
    let bits = x.to_bits();
    let biased = f64::from_bits(0x4330_0000_0000_0000 | ((bits >> 52) & 0x7ff)) - MAGIC;
    let m = f64::from_bits((bits & 0x000f_ffff_ffff_ffff) | 0x3ff0_0000_0000_0000);
    let big = m > std::f64::consts::SQRT_2;
    let m = if big { m * 0.5 } else { m };
    let e = biased - 1023.0 + if big { 1.0 } else { 0.0 };
    // 1/(2k + 1) for k = 6, 5, .., 1.
    const ATANH: [f64; 6] = [1.0 / 13.0, 1.0 / 11.0, 1.0 / 9.0, 1.0 / 7.0, 1.0 / 5.0, 1.0 / 3.0];
    // 1/n! for n = 10, 9, .., 2.
    const EXP: [f64; 9] = [1.0 / 3_628_800.0, 1.0 / 362_880.0, 1.0 / 40_320.0, 1.0 / 5_040.0, 1.0 / 720.0, 1.0 / 120.0, 1.0 / 24.0, 1.0 / 6.0, 0.5];
    let s = (m - 1.0) / (m + 1.0);
    let s2 = s * s;
    let p = ATANH.iter().fold(0.0, |p, c| p * s2 + c);
    let ln_m = 2.0 * s * (p * s2 + 1.0);
    let y = a * (e * LN2_HI + ln_m + e * LN2_LO);
    let k = (y * std::f64::consts::LOG2_E).round();
    let r = (y - k * LN2_HI) - k * LN2_LO;
    let q = EXP.iter().fold(0.0, |q, c| q * r + c);
    let q = (q * r + 1.0) * r + 1.0;
    q * f64::from_bits((k + 1023.0 + MAGIC).to_bits() << 52)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pow_positive_matches_libm() {
        let mut worst = 0f64;
        for i in 0..200_000 {
            // 1e-8 .. 1e8, as PCEN's floor + moving average spans.
            let x = 10f64.powf(-8.0 + 16.0 * i as f64 / 200_000.0) * (1.0 + 1e-3 * (i % 7) as f64);
            for a in [0.8, -0.8, 0.5, 0.25, 1.0] {
                let (ours, libm) = (pow_positive(x, a), x.powf(a));
                worst = worst.max(((ours - libm) / libm).abs());
            }
        }
        assert!(worst < 1e-11, "relative error {worst:e}");
    }
}
