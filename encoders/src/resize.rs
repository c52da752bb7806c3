//! Resizing on the host: Pillow's antialiased resampling, and the exact non-antialiased
//! interpolation of PyTorch and TensorFlow.
//!
//! Both are written here rather than taken from a crate, for exactness against the reference
//! pipelines. `fast_image_resize` was tried first for the antialiased kind: against Pillow 13 on
//! the fixture image it was up to 2 levels off on 8-bit samples (bicubic upscaling: 16% of
//! samples differed; its weights are 16-bit fixed point, Pillow's 22-bit), which a timm
//! preprocessing pipeline would not do. No resizing crate does non-antialiased downscaling.

use crate::input::{Coordinates, Filter, Kernel};

/// A sample type the resamplers work on: u8, u16 or f32.
pub(crate) trait Sample: Copy + Send + Sync + Default + 'static {
    /// As f32.
    fn to_f32(self) -> f32;
    /// A padding value given in f32, rounded and saturated to this type.
    fn from_pad(v: f32) -> Self;
    /// One antialiased pass (see [`resample_pass`]) over this type.
    fn resample(src: &[Self], dst: &mut [Self], taps: &AxisTaps, lanes: Lanes);
}

/// Where a pass reads and writes: `count` lines of `len` samples; sample `i` of line `l` is at
/// `l * line + i * step`, the same layout in and out apart from the length along the axis.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Lanes {
    count: usize,
    src_line: usize,
    dst_line: usize,
    step: usize,
}

/// Pillow's weights for one axis: per output index, the first source index and the normalised
/// weights of the sources from there.
pub(crate) struct AxisTaps {
    first: Vec<usize>,
    weights: Vec<Vec<f64>>,
}

impl AxisTaps {
    /// As Pillow's `precompute_coeffs` for a full-image resize of `input` samples to `output`.
    fn new(input: usize, output: usize, filter: Filter) -> Self {
        let (support, f): (f64, fn(f64) -> f64) = match filter {
            Filter::Bilinear => (1.0, |x| if x.abs() < 1.0 { 1.0 - x.abs() } else { 0.0 }),
            Filter::Bicubic => (2.0, |x| {
                let (a, x) = (-0.5, x.abs());
                if x < 1.0 {
                    ((a + 2.0) * x - (a + 3.0)) * x * x + 1.0
                } else if x < 2.0 {
                    (((x - 5.0) * x + 8.0) * x - 4.0) * a
                } else {
                    0.0
                }
            }),
            Filter::Lanczos3 => (3.0, |x| {
                let sinc = |x: f64| if x == 0.0 { 1.0 } else { (x * std::f64::consts::PI).sin() / (x * std::f64::consts::PI) };
                if (-3.0..3.0).contains(&x) {
                    sinc(x) * sinc(x / 3.0)
                } else {
                    0.0
                }
            }),
        };
        let scale = input as f64 / output as f64;
        let filterscale = scale.max(1.0);
        let support = support * filterscale;
        let mut first = Vec::with_capacity(output);
        let mut weights = Vec::with_capacity(output);
        for o in 0..output {
            let center = (o as f64 + 0.5) * scale;
            // Pillow truncates `center ± support + 0.5` towards zero.
            let lo = ((center - support + 0.5) as i64).max(0) as usize;
            let hi = ((center + support + 0.5) as i64).min(input as i64) as usize;
            let ss = 1.0 / filterscale;
            let mut w: Vec<f64> = (lo..hi).map(|i| f((i as f64 - center + 0.5) * ss)).collect();
            let sum: f64 = w.iter().sum();
            if sum != 0.0 {
                w.iter_mut().for_each(|v| *v /= sum);
            }
            first.push(lo);
            weights.push(w);
        }
        AxisTaps { first, weights }
    }
}

/// Pillow's 8-bit arithmetic: weights in 22-bit fixed point, sums rounded and clipped per pass.
const PRECISION_BITS: u32 = 32 - 8 - 2;

impl Sample for u8 {
    fn to_f32(self) -> f32 {
        f32::from(self)
    }
    fn from_pad(v: f32) -> Self {
        v.round().clamp(0.0, 255.0) as u8
    }
    fn resample(src: &[Self], dst: &mut [Self], taps: &AxisTaps, lanes: Lanes) {
        let fixed: Vec<Vec<i32>> = taps
            .weights
            .iter()
            .map(|w| {
                w.iter()
                    .map(|&k| if k < 0.0 { (-0.5 + k * f64::from(1 << PRECISION_BITS)) as i32 } else { (0.5 + k * f64::from(1 << PRECISION_BITS)) as i32 })
                    .collect()
            })
            .collect();
        for l in 0..lanes.count {
            for (o, (first, k)) in taps.first.iter().zip(&fixed).enumerate() {
                let mut ss: i32 = 1 << (PRECISION_BITS - 1);
                for (j, w) in k.iter().enumerate() {
                    ss += i32::from(src[l * lanes.src_line + (first + j) * lanes.step]) * w;
                }
                dst[l * lanes.dst_line + o * lanes.step] = (ss >> PRECISION_BITS).clamp(0, 255) as u8;
            }
        }
    }
}

impl Sample for u16 {
    fn to_f32(self) -> f32 {
        f32::from(self)
    }
    fn from_pad(v: f32) -> Self {
        v.round().clamp(0.0, 65535.0) as u16
    }
    fn resample(src: &[Self], dst: &mut [Self], taps: &AxisTaps, lanes: Lanes) {
        float_pass(src, dst, taps, lanes, f64::from, |s| (s + 0.5).floor().clamp(0.0, 65535.0) as u16);
    }
}

impl Sample for f32 {
    fn to_f32(self) -> f32 {
        self
    }
    fn from_pad(v: f32) -> Self {
        v
    }
    fn resample(src: &[Self], dst: &mut [Self], taps: &AxisTaps, lanes: Lanes) {
        float_pass(src, dst, taps, lanes, f64::from, |s| s as f32);
    }
}

/// Pillow's 32-bit modes: sums in f64, rounded (integers) or stored (floats) per pass.
fn float_pass<S: Copy>(src: &[S], dst: &mut [S], taps: &AxisTaps, lanes: Lanes, load: fn(S) -> f64, store: fn(f64) -> S) {
    for l in 0..lanes.count {
        for (o, (first, k)) in taps.first.iter().zip(&taps.weights).enumerate() {
            let ss: f64 = k.iter().enumerate().map(|(j, w)| load(src[l * lanes.src_line + (first + j) * lanes.step]) * w).sum();
            dst[l * lanes.dst_line + o * lanes.step] = store(ss);
        }
    }
}

/// Antialiased resize of an interleaved image with `channels` channels to `(dw, dh)`, as
/// Pillow's `Image.resize` does it: a horizontal pass, then a vertical one, each only where that
/// side changes.
pub(crate) fn antialiased<S: Sample>(src: &[S], (w, h): (usize, usize), channels: usize, (dw, dh): (usize, usize), filter: Filter) -> Vec<S> {
    let c = channels;
    let mut cur = src.to_vec();
    let mut cw = w;
    if dw != w {
        let mut next = vec![S::default(); dw * h * c];
        let taps = AxisTaps::new(w, dw, filter);
        for ch in 0..c {
            // Lines are image rows; a channel's samples are `c` apart.
            let lanes = Lanes { count: h, src_line: w * c, dst_line: dw * c, step: c };
            S::resample(&cur[ch..], &mut next[ch..], &taps, lanes);
        }
        cur = next;
        cw = dw;
    }
    if dh != h {
        let mut next = vec![S::default(); cw * dh * c];
        let taps = AxisTaps::new(h, dh, filter);
        // Lines are image columns (one per sample of a row); along them, a row apart.
        let lanes = Lanes { count: cw * c, src_line: 1, dst_line: 1, step: cw * c };
        S::resample(&cur, &mut next, &taps, lanes);
        cur = next;
    }
    cur
}

/// For each output index along one axis: the source indices and weights it reads.
fn taps(input: usize, output: usize, kernel: Kernel, coordinates: Coordinates) -> Vec<([usize; 4], [f32; 4])> {
    let scale = input as f32 / output as f32;
    let last = input as isize - 1;
    let clamp = |i: isize| i.clamp(0, last) as usize;
    (0..output)
        .map(|o| {
            let src = match coordinates {
                Coordinates::HalfPixel => (o as f32 + 0.5) * scale - 0.5,
                Coordinates::Asymmetric => o as f32 * scale,
            };
            match kernel {
                Kernel::Bilinear => {
                    // PyTorch clamps negative half-pixel sources to 0 for linear modes.
                    let src = src.max(0.0);
                    let i0 = (src.floor() as isize).min(last);
                    let t = src - i0 as f32;
                    ([clamp(i0), clamp(i0 + 1), 0, 0], [1.0 - t, t, 0.0, 0.0])
                }
                Kernel::Bicubic => {
                    let i0 = src.floor() as isize;
                    let t = src - i0 as f32;
                    let a = -0.75f32;
                    let near = |x: f32| ((a + 2.0) * x - (a + 3.0)) * x * x + 1.0;
                    let far = |x: f32| ((a * x - 5.0 * a) * x + 8.0 * a) * x - 4.0 * a;
                    ([clamp(i0 - 1), clamp(i0), clamp(i0 + 1), clamp(i0 + 2)], [far(t + 1.0), near(t), near(1.0 - t), far(2.0 - t)])
                }
            }
        })
        .collect()
}

/// Non-antialiased resize of channel planes `(c, h, w)` (f32) to `(c, dh, dw)`: rows first,
/// then columns, as separable kernels allow.
pub(crate) fn interpolate(
    src: &[f32],
    (w, h): (usize, usize),
    channels: usize,
    (dw, dh): (usize, usize),
    kernel: Kernel,
    coordinates: Coordinates,
) -> Vec<f32> {
    let xs = taps(w, dw, kernel, coordinates);
    let ys = taps(h, dh, kernel, coordinates);
    let n = if kernel == Kernel::Bilinear { 2 } else { 4 };
    let mut out = vec![0f32; channels * dh * dw];
    let mut rows = vec![0f32; h * dw];
    for (plane, out) in src.chunks_exact(w * h).zip(out.chunks_exact_mut(dw * dh)) {
        for (row, dst) in plane.chunks_exact(w).zip(rows.chunks_exact_mut(dw)) {
            for (d, (idx, wt)) in dst.iter_mut().zip(&xs) {
                *d = (0..n).map(|k| wt[k] * row[idx[k]]).sum();
            }
        }
        for (dst, (idx, wt)) in out.chunks_exact_mut(dw).zip(&ys) {
            for (x, d) in dst.iter_mut().enumerate() {
                *d = (0..n).map(|k| wt[k] * rows[idx[k] * dw + x]).sum();
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn weights_sum_to_one_and_identity_is_exact() {
        for kernel in [Kernel::Bilinear, Kernel::Bicubic] {
            for coordinates in [Coordinates::HalfPixel, Coordinates::Asymmetric] {
                for (i, o) in [(7, 3), (3, 7), (224, 448), (5, 5)] {
                    for (_, w) in taps(i, o, kernel, coordinates) {
                        assert!((w.iter().sum::<f32>() - 1.0).abs() < 1e-6, "{kernel:?} {coordinates:?} {i}->{o}");
                    }
                }
                let img: Vec<f32> = (0..30).map(|v| v as f32).collect();
                assert_eq!(interpolate(&img, (6, 5), 1, (6, 5), kernel, coordinates), img);
            }
        }
    }
}
