//! HeAR's front end as tensor ops on the encoder's device: 2 s of 16 kHz audio → a 192 × 128
//! mel-PCEN "image". The steps and their constants are in `docs/HEAR.md`, with their sources:
//!
//! 1. each clip min–max scaled to [-1, 1] (per clip; see below),
//! 2. STFT: 400-sample periodic Hann frames every 160 samples, zero-padded at the end
//!    (TensorFlow's `pad_end`: 200 frames for 32,000 samples), 400-point DFT → power,
//! 3. 128 mel bands over 0–8,000 Hz (TensorFlow's `linear_to_mel_weight_matrix`, HTK mel),
//! 4. PCEN (α 0.8, smoothing 0.04, δ 2, root 2, floor 1e-8) with its moving average started
//!    at the first frame,
//! 5. bilinear resize of the 200 frames to 192 rows (`align_corners=False`, no antialias).
//!
//! On CUDA (and any non-CPU device) every step is linear algebra with fixed matrices built
//! once: the DFT is one matmul with a windowed cosine/sine basis, the mel bands another, the
//! PCEN moving average a lower-triangular `frames × frames` matmul (its closed form), and the
//! resize a `192 × 200` matmul; a whole batch is a few matmuls, in f32 whatever the model's
//! dtype. On the CPU the same steps run per clip on rayon with a real FFT (realfft), the mel
//! triangles as the few bins each one covers, the moving average as its recursion and the
//! resize as two taps per row: measured 4.5× faster than the matmul form on 2 cores
//! (docs/BENCHMARKS.md), because most of those matrices are zeros.
//!
//! Per clip, not per batch: the front end of Google's PyTorch port (as quoted in `docs/HEAR.md`)
//! scales by the minimum and maximum of the whole batch tensor, so a clip's embedding would
//! depend on its batch-mates. Here each clip is scaled by its own; for a batch of one (what
//! Google's serving embeds per request) the two are the same.

use super::cpu_path::CpuPlan;
use super::frontend_config::FrontEndConfig;
use crate::error::{EncoderError, Result};
use candle_core::{DType, Device, Tensor, D};
use rayon::prelude::*;
use std::sync::Arc;

/// The front end with its matrices on one device.
#[derive(Debug, Clone)]
pub struct FrontEnd {
    cfg: FrontEndConfig,
    /// `(frame_length, 2 · bins)`: Hann-windowed cosines, then negated sines.
    dft: Tensor,
    /// `(bins, mel_bins)`.
    mel: Tensor,
    /// `(frames, frames)`: the PCEN moving average as a matrix.
    ema: Tensor,
    /// `(out_height, frames)`: the bilinear resize along time.
    resize: Tensor,
    device: Device,
    cpu: Arc<CpuPlan>,
}

impl FrontEnd {
    /// Builds the matrices of `cfg` on `device`.
    pub fn new(cfg: FrontEndConfig, device: &Device) -> Result<Self> {
        cfg.validate()?;
        let (fl, bins, frames) = (cfg.frame_length, cfg.bins(), cfg.frames());
        let to = |v: Vec<f64>, shape: (usize, usize)| -> Result<Tensor> {
            Ok(Tensor::from_vec(v.into_iter().map(|x| x as f32).collect::<Vec<f32>>(), shape, device)?)
        };
        let mel64 = mel_matrix(bins, cfg.mel_bins, f64::from(cfg.sample_rate), cfg.lower_hz, cfg.upper_hz);
        let resize64 = resize_matrix(frames, cfg.out_height);
        let cpu = Arc::new(CpuPlan::new(&cfg, &mel64, &resize64));
        // The matrices of the tensor path; on the CPU they stay empty (the CPU path needs none).
        let (dft, mel, ema, resize) = if device.is_cpu() {
            let empty = Tensor::zeros(0, DType::F32, device)?;
            (empty.clone(), empty.clone(), empty.clone(), empty)
        } else {
            (
                to(dft_basis(fl, cfg.fft_length), (fl, 2 * bins))?,
                to(mel64, (bins, cfg.mel_bins))?,
                to(ema_matrix(frames, cfg.pcen_smooth), (frames, frames))?,
                Tensor::from_vec(resize64, (cfg.out_height, frames), device)?,
            )
        };
        Ok(FrontEnd { cfg, dft, mel, ema, resize, device: device.clone(), cpu })
    }

    /// The constants.
    pub fn config(&self) -> &FrontEndConfig {
        &self.cfg
    }

    fn check(&self, clips: &Tensor) -> Result<(usize, usize)> {
        let (n, samples) = clips.dims2()?;
        if samples != self.cfg.clip_samples {
            return Err(EncoderError::BadInput { index: 0, problem: format!("clips have {samples} samples; this front end takes {}", self.cfg.clip_samples) });
        }
        Ok((n, samples))
    }

    /// The clips as f32 values on the CPU.
    fn cpu_input(&self, clips: &Tensor) -> Result<(usize, Vec<f32>)> {
        let (n, _) = self.check(clips)?;
        Ok((n, clips.to_device(&Device::Cpu)?.to_dtype(DType::F32)?.flatten_all()?.to_vec1::<f32>()?))
    }

    /// `(N, clip_samples)` → `(N, frames, mel_bins)`: mel power before PCEN, after the per-clip
    /// scaling, by the tensor path (the matmul form, on any device).
    pub fn mel_power(&self, clips: &Tensor) -> Result<Tensor> {
        let c = &self.cfg;
        let (n, samples) = self.check(clips)?;
        if self.device.is_cpu() && self.dft.elem_count() == 0 {
            // The CPU path keeps no matrices: build them for this call.
            let fe = FrontEnd { device: Device::Cpu, ..FrontEnd::new_matrices(c.clone())? };
            return fe.mel_power(clips);
        }
        let x = clips.to_device(&self.device)?.to_dtype(DType::F32)?;
        // [-1, 1] per clip: (x − min) / (max − min + 1e-8) · 2 − 1.
        let min = x.min_keepdim(D::Minus1)?;
        let range = (x.max_keepdim(D::Minus1)? - &min)?;
        let x = ((x.broadcast_sub(&min)?.broadcast_div(&(range + 1e-8)?)? * 2.0)? - 1.0)?;
        // Frame f is samples [f·step, f·step + length): cut the zero-padded signal into blocks of
        // `step` and lay `length / step` whole blocks and one partial block side by side.
        let (frames, step, fl) = (c.frames(), c.frame_step, c.frame_length);
        let (whole, rest) = (fl / step, fl % step);
        let blocks = frames + whole - 1 + usize::from(rest > 0);
        let x = x.pad_with_zeros(1, 0, blocks * step - samples)?.reshape((n, blocks, step))?;
        let mut parts = Vec::with_capacity(whole + 1);
        for j in 0..whole {
            parts.push(x.narrow(1, j, frames)?);
        }
        if rest > 0 {
            parts.push(x.narrow(1, whole, frames)?.narrow(2, 0, rest)?);
        }
        let framed = Tensor::cat(&parts, 2)?.reshape((n * frames, fl))?;
        let spectrum = framed.matmul(&self.dft)?;
        let bins = c.bins();
        let power = (spectrum.narrow(1, 0, bins)?.sqr()? + spectrum.narrow(1, bins, bins)?.sqr()?)?;
        Ok(power.matmul(&self.mel)?.reshape((n, frames, c.mel_bins))?)
    }

    /// `(N, clip_samples)` → `(N, frames, mel_bins)`: mel-PCEN before the resize.
    pub fn mel_pcen(&self, clips: &Tensor) -> Result<Tensor> {
        let c = &self.cfg;
        if self.device.is_cpu() {
            let (n, x) = self.cpu_input(clips)?;
            let (frames, mels) = (c.frames(), c.mel_bins);
            let mut out = vec![0f32; n * frames * mels];
            out.par_chunks_mut(frames * mels).zip(x.par_chunks(c.clip_samples)).for_each(|(o, x)| self.cpu.mel_pcen(c, x, o));
            return Ok(Tensor::from_vec(out, (n, frames, mels), &self.device)?);
        }
        self.mel_pcen_matmul(clips)
    }

    /// `(N, clip_samples)` → `(N, 1, out_height, out_width)` f32: the model's input.
    pub fn forward(&self, clips: &Tensor) -> Result<Tensor> {
        let c = &self.cfg;
        if self.device.is_cpu() {
            let (n, x) = self.cpu_input(clips)?;
            let (frames, mels, rows) = (c.frames(), c.mel_bins, c.out_height);
            let mut out = vec![0f32; n * rows * mels];
            out.par_chunks_mut(rows * mels).zip(x.par_chunks(c.clip_samples)).for_each(|(o, x)| {
                let mut pcen = vec![0f32; frames * mels];
                self.cpu.mel_pcen(c, x, &mut pcen);
                self.cpu.resize(mels, &pcen, o);
            });
            return Ok(Tensor::from_vec(out, (n, 1, rows, mels), &self.device)?);
        }
        self.forward_with_matrices(clips)
    }
}

impl FrontEnd {
    /// The tensor path's matrices on the CPU (for checking the two paths against each other).
    fn new_matrices(cfg: FrontEndConfig) -> Result<Self> {
        let (fl, bins, frames) = (cfg.frame_length, cfg.bins(), cfg.frames());
        let dev = Device::Cpu;
        let to = |v: Vec<f64>, shape: (usize, usize)| -> Result<Tensor> {
            Ok(Tensor::from_vec(v.into_iter().map(|x| x as f32).collect::<Vec<f32>>(), shape, &dev)?)
        };
        let mel64 = mel_matrix(bins, cfg.mel_bins, f64::from(cfg.sample_rate), cfg.lower_hz, cfg.upper_hz);
        let resize64 = resize_matrix(frames, cfg.out_height);
        Ok(FrontEnd {
            cpu: Arc::new(CpuPlan::new(&cfg, &mel64, &resize64)),
            dft: to(dft_basis(fl, cfg.fft_length), (fl, 2 * bins))?,
            mel: to(mel64, (bins, cfg.mel_bins))?,
            ema: to(ema_matrix(frames, cfg.pcen_smooth), (frames, frames))?,
            resize: Tensor::from_vec(resize64, (cfg.out_height, frames), &dev)?,
            device: Device::Cpu,
            cfg,
        })
    }

    /// `(N, clip_samples)` → `(N, 1, out_height, out_width)` by the tensor path on the CPU:
    /// what CUDA computes, for checking it here.
    pub fn forward_matmul(&self, clips: &Tensor) -> Result<Tensor> {
        FrontEnd::new_matrices(self.cfg.clone())?.forward_with_matrices(clips)
    }

    /// The tensor path with this front end's own matrices.
    fn forward_with_matrices(&self, clips: &Tensor) -> Result<Tensor> {
        let pcen = self.mel_pcen_matmul(clips)?;
        let n = pcen.dim(0)?;
        Ok(self.resize.broadcast_as((n, self.cfg.out_height, self.cfg.frames()))?.matmul(&pcen)?.unsqueeze(1)?)
    }

    fn mel_pcen_matmul(&self, clips: &Tensor) -> Result<Tensor> {
        let c = &self.cfg;
        let mel = self.mel_power(clips)?;
        let n = mel.dim(0)?;
        let smooth = self.ema.broadcast_as((n, c.frames(), c.frames()))?.matmul(&mel)?;
        let gain = (smooth + c.pcen_floor)?.powf(c.pcen_alpha)?;
        let y = (mel.div(&gain)? + c.pcen_delta)?;
        let y = if c.pcen_root == 2.0 { y.sqrt()? } else { y.powf(1.0 / c.pcen_root)? };
        Ok((y - c.pcen_delta.powf(1.0 / c.pcen_root))?)
    }
}

/// `(length, 2 · (fft / 2 + 1))` row-major: column k is `hann[t] · cos(2πkt / fft)`, column
/// `bins + k` is `−hann[t] · sin(2πkt / fft)`, so `frame · basis` is the real and imaginary
/// parts of `rfft(hann · frame, fft)`. The Hann window is periodic (`torch.hann_window`,
/// `tf.signal.hann_window` defaults).
fn dft_basis(length: usize, fft: usize) -> Vec<f64> {
    let bins = fft / 2 + 1;
    let mut out = vec![0.0; length * 2 * bins];
    for t in 0..length {
        let w = 0.5 - 0.5 * (2.0 * std::f64::consts::PI * t as f64 / length as f64).cos();
        for k in 0..bins {
            // k·t mod fft keeps the angle small, so cos/sin stay exact to f64 rounding.
            let a = 2.0 * std::f64::consts::PI * ((k * t) % fft) as f64 / fft as f64;
            out[t * 2 * bins + k] = w * a.cos();
            out[t * 2 * bins + bins + k] = -w * a.sin();
        }
    }
    out
}

fn hz_to_mel(hz: f64) -> f64 {
    2595.0 * (1.0 + hz / 700.0).log10()
}

/// `(bins, mel_bins)` row-major, as TensorFlow's `linear_to_mel_weight_matrix`: bins spaced
/// evenly over 0..Nyquist, band edges evenly in HTK mel between `lower` and `upper`, triangles
/// `max(0, min(rising, falling))`, and the DC bin given no weight.
pub(super) fn mel_matrix(bins: usize, mel_bins: usize, sample_rate: f64, lower: f64, upper: f64) -> Vec<f64> {
    let nyquist = sample_rate / 2.0;
    let (lo, hi) = (hz_to_mel(lower), hz_to_mel(upper));
    let edge = |i: usize| lo + (hi - lo) * i as f64 / (mel_bins + 1) as f64;
    let mut out = vec![0.0; bins * mel_bins];
    for b in 1..bins {
        let m = hz_to_mel(nyquist * b as f64 / (bins - 1) as f64);
        for j in 0..mel_bins {
            let (l, c, u) = (edge(j), edge(j + 1), edge(j + 2));
            out[b * mel_bins + j] = ((m - l) / (c - l)).min((u - m) / (u - c)).max(0.0);
        }
    }
    out
}

/// `(frames, frames)` row-major: PCEN's moving average `m₀ = x₀, m_t = s·x_t + (1 − s)·m_{t−1}`
/// in closed form, `m_t = (1 − s)^t x₀ + Σ_{1≤k≤t} s (1 − s)^{t−k} x_k`.
fn ema_matrix(frames: usize, s: f64) -> Vec<f64> {
    let mut out = vec![0.0; frames * frames];
    for t in 0..frames {
        out[t * frames] = (1.0 - s).powi(t as i32);
        for k in 1..=t {
            out[t * frames + k] = s * (1.0 - s).powi((t - k) as i32);
        }
    }
    out
}

/// `(out, len)` row-major: bilinear resize of `len` rows to `out` with half-pixel centres,
/// computed in f32 as PyTorch's `upsample_bilinear2d` (`align_corners=False`) does: source
/// `max((d + 0.5)·len/out − 0.5, 0)`, the two nearest rows weighted by distance.
pub(super) fn resize_matrix(len: usize, out: usize) -> Vec<f32> {
    let scale = len as f32 / out as f32;
    let mut m = vec![0.0f32; out * len];
    for d in 0..out {
        let src = (scale * (d as f32 + 0.5) - 0.5).max(0.0);
        let i0 = (src.floor() as usize).min(len - 1);
        let i1 = if i0 < len - 1 { i0 + 1 } else { i0 };
        let l = (src - i0 as f32).clamp(0.0, 1.0);
        m[d * len + i0] += 1.0 - l;
        m[d * len + i1] += l;
    }
    m
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hear_has_200_frames_and_201_bins() {
        let c = FrontEndConfig::hear();
        assert_eq!((c.frames(), c.bins()), (200, 201));
    }

    #[test]
    fn the_dft_basis_finds_a_pure_tone_in_its_bin() {
        // A cosine at bin 40 (1,600 Hz) of a 400-point DFT: all power in bins 39..=41 (the
        // Hann window's main lobe), none elsewhere.
        let fe = FrontEnd::new_matrices(FrontEndConfig::hear()).unwrap();
        let frame: Vec<f32> = (0..400).map(|t| (2.0 * std::f32::consts::PI * 40.0 * t as f32 / 400.0).cos()).collect();
        let x = Tensor::from_vec(frame, (1, 400), &Device::Cpu).unwrap();
        let s = x.matmul(&fe.dft).unwrap().flatten_all().unwrap().to_vec1::<f32>().unwrap();
        let power: Vec<f32> = (0..201).map(|k| s[k] * s[k] + s[201 + k] * s[201 + k]).collect();
        // Periodic Hann: X[40] = N/4 = 100, X[39] = X[41] = -N/8 = -50.
        assert!((power[40] - 100.0 * 100.0).abs() < 0.05, "{}", power[40]);
        assert!((power[39] - 2500.0).abs() < 0.05 && (power[41] - 2500.0).abs() < 0.05);
        assert!(power.iter().enumerate().filter(|(k, _)| !(39..=41).contains(k)).all(|(_, p)| *p < 1e-6));
    }

    #[test]
    fn the_cpu_path_and_the_matmul_path_agree() {
        // What CUDA runs (the matmul form) against the CPU path, on a chirp with noise and a
        // clip that ends in silence.
        let fe = FrontEnd::new(FrontEndConfig::hear(), &Device::Cpu).unwrap();
        let mut state = 1u32;
        let clip: Vec<f32> = (0..64_000)
            .map(|i| {
                state = state.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
                let t = (i % 32_000) as f32 / 16_000.0;
                let tone = (2.0 * std::f32::consts::PI * (200.0 + 900.0 * t) * t).sin();
                if i >= 32_000 && t > 1.5 {
                    0.0
                } else {
                    0.4 * tone + 0.01 * ((state >> 8) as f32 / 16_777_216.0 - 0.5)
                }
            })
            .collect();
        let x = Tensor::from_vec(clip, (2, 32_000), &Device::Cpu).unwrap();
        let a = fe.forward(&x).unwrap().flatten_all().unwrap().to_vec1::<f32>().unwrap();
        let b = fe.forward_matmul(&x).unwrap().flatten_all().unwrap().to_vec1::<f32>().unwrap();
        let peak = b.iter().fold(0f32, |m, v| m.max(v.abs()));
        let worst = a.iter().zip(&b).map(|(p, q)| (p - q).abs()).fold(0f32, f32::max);
        // f32 matmuls against f64 (measured 6e-6 of the peak).
        println!("matmul path vs CPU path: {:.2e} of the peak", worst / peak);
        assert!(worst / peak < 5e-5, "{worst} of {peak}");
    }

    #[test]
    fn the_moving_average_matrix_is_the_recursion() {
        let (s, n) = (0.04, 7);
        let m = ema_matrix(n, s);
        let x: Vec<f64> = (0..n).map(|i| (i * i) as f64 + 1.0).collect();
        let mut state = x[0];
        for t in 0..n {
            if t > 0 {
                state = s * x[t] + (1.0 - s) * state;
            }
            let closed: f64 = (0..n).map(|k| m[t * n + k] * x[k]).sum();
            assert!((closed - state).abs() < 1e-12, "{t}: {closed} vs {state}");
        }
    }

    #[test]
    fn the_resize_rows_sum_to_one_and_keep_the_ends() {
        let m = resize_matrix(200, 192);
        for d in 0..192 {
            let sum: f32 = m[d * 200..(d + 1) * 200].iter().sum();
            assert!((sum - 1.0).abs() < 1e-6);
        }
        // Output row d reads source row (d + 0.5) · 200/192 − 0.5: row 0 reads 0.0208, the
        // last 198.979.
        assert!((m[0] - (1.0 - 1.0 / 48.0)).abs() < 1e-6 && (m[1] - 1.0 / 48.0).abs() < 1e-6, "{:?}", &m[..2]);
        let last = &m[191 * 200..];
        assert!(last[..198].iter().all(|w| *w == 0.0) && (last[199] - 47.0 / 48.0).abs() < 5e-5, "{:?}", &last[198..]);
    }

    #[test]
    fn wrong_clip_length_is_an_error_naming_both() {
        let fe = FrontEnd::new(FrontEndConfig::hear(), &Device::Cpu).unwrap();
        let err = fe.forward(&Tensor::zeros((2, 16_000), DType::F32, &Device::Cpu).unwrap()).unwrap_err().to_string();
        assert!(err.contains("16000") && err.contains("32000"), "{err}");
    }
}
