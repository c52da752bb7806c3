//! `extensions.image_dimensions`, as Google's server does it: inline images resized whole
//! before patches are cut ([`resize_rgb8`]), patches of DICOM levels shrunk ([`area_rgb8`]) or
//! enlarged ([`cubic_rgb8`]) from the part of the level they cover. Value for value, except
//! that OpenCV's x86-64 builds hand 8-bit INTER_CUBIC to Intel IPP, whose results differ from
//! OpenCV's own code (which [`cubic_rgb8`] follows exactly) by one grey level in about 3% of
//! values.
//!
//! Google's server resizes with EZ-WSI's `gcs_image._resize`, which means to pick INTER_AREA
//! (shrinking) or INTER_CUBIC (enlarging) but passes the flag where `cv2.resize` takes its
//! `dst` argument, so OpenCV's default runs: INTER_LINEAR (and, for an exact 2× shrink on both
//! axes, OpenCV's own switch to its 2×2 area average). Hand-written rather than the image
//! crate's resize because the embedding must see the same pixels as Google's: this follows
//! OpenCV's fixed-point arithmetic for 8-bit images (11-bit weights, its rounding), checked
//! against `cv2.resize` in `tests/serve_ezwsi.rs`.

/// OpenCV's 11-bit fixed-point weight scale (INTER_RESIZE_COEF_SCALE).
const ONE: i32 = 2048;

/// Source index and the two 11-bit weights for each output position along one axis.
fn weights(src: usize, dst: usize) -> Vec<(usize, i32, i32, bool)> {
    // As OpenCV: the scale is 1 / (dst / src) in double, positions in float.
    let scale = 1.0 / (dst as f64 / src as f64);
    (0..dst)
        .map(|d| {
            let mut f = ((d as f64 + 0.5) * scale - 0.5) as f32;
            let mut s = f.floor() as i64;
            f -= s as f32;
            if s < 0 {
                s = 0;
                f = 0.0;
            }
            // Past the last source pixel but one, OpenCV takes the pixel itself.
            let edge = s + 1 >= src as i64;
            if s >= src as i64 - 1 {
                s = src as i64 - 1;
                f = 0.0;
            }
            let w0 = ((1.0f32 - f) * ONE as f32).round_ties_even() as i32;
            let w1 = (f * ONE as f32).round_ties_even() as i32;
            (s as usize, w0, w1, edge)
        })
        .collect()
}

/// `cv2.resize(rgb, (dw, dh))` of an RGB8 image `sw`×`sh`, OpenCV's default interpolation.
pub fn resize_rgb8(src: &[u8], sw: usize, sh: usize, dw: usize, dh: usize) -> Vec<u8> {
    debug_assert_eq!(src.len(), sw * sh * 3);
    if (sw, sh) == (dw, dh) {
        return src.to_vec();
    }
    let (sx, sy) = (1.0 / (dw as f64 / sw as f64), 1.0 / (dh as f64 / sh as f64));
    if sx == 2.0 && sy == 2.0 {
        return halve(src, sw, dw, dh);
    }
    let xs = weights(sw, dw);
    // The horizontal pass of one source row, kept for the two rows in use.
    let row = |y: usize| -> Vec<i32> {
        let line = &src[y * sw * 3..(y + 1) * sw * 3];
        let mut out = Vec::with_capacity(dw * 3);
        for &(s, w0, w1, edge) in &xs {
            for c in 0..3 {
                let a = i32::from(line[s * 3 + c]);
                out.push(if edge { a * ONE } else { a * w0 + i32::from(line[(s + 1) * 3 + c]) * w1 });
            }
        }
        out
    };
    let mut out = Vec::with_capacity(dw * dh * 3);
    let mut cache: Vec<(usize, Vec<i32>)> = Vec::new();
    for d in 0..dh {
        // Rows have no edge rule: OpenCV clamps the row indices instead.
        let mut f = ((d as f64 + 0.5) * sy - 0.5) as f32;
        let s = f.floor() as i64;
        f -= s as f32;
        let (b0, b1) = (((1.0f32 - f) * ONE as f32).round_ties_even() as i32, (f * ONE as f32).round_ties_even() as i32);
        let clamp = |y: i64| y.clamp(0, sh as i64 - 1) as usize;
        let (y0, y1) = (clamp(s), clamp(s + 1));
        for y in [y0, y1] {
            if !cache.iter().any(|(k, _)| *k == y) {
                cache.push((y, row(y)));
                if cache.len() > 2 {
                    cache.remove(0);
                }
            }
        }
        let get = |y: usize| &cache.iter().find(|(k, _)| *k == y).expect("cached above").1;
        let (r0, r1) = (get(y0), get(y1));
        out.extend(r0.iter().zip(r1).map(|(&a, &b)| ((((b0 * (a >> 4)) >> 16) + ((b1 * (b >> 4)) >> 16) + 2) >> 2).clamp(0, 255) as u8));
    }
    out
}

/// OpenCV's exact 2× shrink (2×2 average, rounded half up).
fn halve(src: &[u8], sw: usize, dw: usize, dh: usize) -> Vec<u8> {
    let mut out = Vec::with_capacity(dw * dh * 3);
    for y in 0..dh {
        let (r0, r1) = (&src[2 * y * sw * 3..], &src[(2 * y + 1) * sw * 3..]);
        for x in 0..dw {
            for c in 0..3 {
                let i = 2 * x * 3 + c;
                let sum = u32::from(r0[i]) + u32::from(r0[i + 3]) + u32::from(r1[i]) + u32::from(r1[i + 3]);
                out.push(((sum + 2) >> 2) as u8);
            }
        }
    }
    out
}

/// One source index and its weight for an output index (OpenCV's `DecimateAlpha`).
struct Alpha {
    d: usize,
    s: usize,
    w: f32,
}

/// OpenCV's `computeResizeAreaTab`: the source cells each output cell covers, with their
/// fractions, for a shrink by `scale` = src / dst (double, as OpenCV computes it).
fn area_table(src: usize, dst: usize, scale: f64) -> Vec<Alpha> {
    let mut tab = Vec::new();
    for d in 0..dst {
        let f1 = d as f64 * scale;
        let f2 = f1 + scale;
        let cell = scale.min(src as f64 - f1);
        let mut s2 = f2.floor() as i64;
        s2 = s2.min(src as i64 - 1);
        let s1 = (f1.ceil() as i64).min(s2);
        if s1 as f64 - f1 > 1e-3 {
            tab.push(Alpha { d, s: (s1 - 1) as usize, w: ((s1 as f64 - f1) / cell) as f32 });
        }
        for s in s1..s2 {
            tab.push(Alpha { d, s: s as usize, w: (1.0 / cell) as f32 });
        }
        if f2 - s2 as f64 > 1e-3 {
            tab.push(Alpha { d, s: s2 as usize, w: ((f2 - s2 as f64).min(1.0).min(cell) / cell) as f32 });
        }
    }
    tab
}

/// `cv2.resize(rgb, (dw, dh), interpolation=cv2.INTER_AREA)` of an RGB8 image `sw`×`sh` that is
/// not enlarged on either axis, as OpenCV computes it: whole-number factors average their
/// blocks (2×2 rounded half up, others rounded half to even), others weigh partial source
/// pixels by their area in single precision. EZ-WSI shrinks DICOM patches with it.
pub fn area_rgb8(src: &[u8], sw: usize, sh: usize, dw: usize, dh: usize) -> Vec<u8> {
    debug_assert!(dw <= sw && dh <= sh && dw > 0 && dh > 0);
    if (sw, sh) == (dw, dh) {
        return src.to_vec();
    }
    let (sx, sy) = (1.0 / (dw as f64 / sw as f64), 1.0 / (dh as f64 / sh as f64));
    let (ix, iy) = (sx.round(), sy.round());
    if (sx - ix).abs() < f64::EPSILON && (sy - iy).abs() < f64::EPSILON {
        let (ix, iy) = (ix as usize, iy as usize);
        if (ix, iy) == (2, 2) {
            return halve(src, sw, dw, dh);
        }
        let scale = 1.0f32 / (ix * iy) as f32;
        let mut out = Vec::with_capacity(dw * dh * 3);
        for y in 0..dh {
            for x in 0..dw {
                for c in 0..3 {
                    let mut sum = 0i32;
                    for r in 0..iy {
                        let row = &src[(y * iy + r) * sw * 3..];
                        for k in 0..ix {
                            sum += i32::from(row[(x * ix + k) * 3 + c]);
                        }
                    }
                    out.push((sum as f32 * scale).round_ties_even().clamp(0.0, 255.0) as u8);
                }
            }
        }
        return out;
    }
    let xtab = area_table(sw, dw, sx);
    let ytab = area_table(sh, dh, sy);
    let n = dw * 3;
    let mut out = vec![0u8; dh * n];
    let (mut buf, mut sum) = (vec![0f32; n], vec![0f32; n]);
    let mut prev = ytab.first().map_or(0, |a| a.d);
    let flush = |out: &mut [u8], d: usize, sum: &[f32]| {
        for (o, s) in out[d * n..(d + 1) * n].iter_mut().zip(sum) {
            *o = s.round_ties_even().clamp(0.0, 255.0) as u8;
        }
    };
    for a in &ytab {
        let row = &src[a.s * sw * 3..(a.s + 1) * sw * 3];
        buf.iter_mut().for_each(|b| *b = 0.0);
        for t in &xtab {
            for c in 0..3 {
                buf[t.d * 3 + c] += f32::from(row[t.s * 3 + c]) * t.w;
            }
        }
        if a.d != prev {
            flush(&mut out, prev, &sum);
            for (s, b) in sum.iter_mut().zip(&buf) {
                *s = a.w * b;
            }
            prev = a.d;
        } else {
            for (s, b) in sum.iter_mut().zip(&buf) {
                *s += a.w * b;
            }
        }
    }
    flush(&mut out, prev, &sum);
    out
}

/// OpenCV's `interpolateCubic` (A = −0.75), in single precision.
fn cubic_coefficients(x: f32) -> [f32; 4] {
    const A: f32 = -0.75;
    let c0 = ((A * (x + 1.0) - 5.0 * A) * (x + 1.0) + 8.0 * A) * (x + 1.0) - 4.0 * A;
    let c1 = ((A + 2.0) * x - (A + 3.0)) * x * x + 1.0;
    let c2 = ((A + 2.0) * (1.0 - x) - (A + 3.0)) * (1.0 - x) * (1.0 - x) + 1.0;
    [c0, c1, c2, 1.0 - c0 - c1 - c2]
}

/// For each output index along an axis: the source index of its second tap and the four
/// 11-bit weights, as OpenCV's cubic resize sets them up (no clamping of the position; the
/// taps are clamped to the image when read).
fn cubic_taps(src: usize, dst: usize) -> Vec<(i64, [i32; 4])> {
    let scale = 1.0 / (dst as f64 / src as f64);
    (0..dst)
        .map(|d| {
            let mut f = ((d as f64 + 0.5) * scale - 0.5) as f32;
            let s = f.floor();
            f -= s;
            let c = cubic_coefficients(f);
            (s as i64, c.map(|v| (v * ONE as f32).round_ties_even().clamp(i16::MIN as f32, i16::MAX as f32) as i32))
        })
        .collect()
}

/// `cv2.resize(rgb, (dw, dh), interpolation=cv2.INTER_CUBIC)` of an RGB8 image, as OpenCV
/// computes it for 8-bit images on x86-64: integer rows with 11-bit weights and the border
/// replicated, then columns in single precision for each whole group of 8 values of a row
/// (its SIMD lanes) and in 22-bit fixed point for the rest. EZ-WSI enlarges DICOM patches
/// with it.
pub fn cubic_rgb8(src: &[u8], sw: usize, sh: usize, dw: usize, dh: usize) -> Vec<u8> {
    debug_assert_eq!(src.len(), sw * sh * 3);
    if (sw, sh) == (dw, dh) {
        return src.to_vec();
    }
    let xs = cubic_taps(sw, dw);
    let clamp = |i: i64, n: usize| i.clamp(0, n as i64 - 1) as usize;
    let row = |y: usize| -> Vec<i32> {
        let line = &src[y * sw * 3..(y + 1) * sw * 3];
        let mut out = Vec::with_capacity(dw * 3);
        for (s, w) in &xs {
            for c in 0..3 {
                let v = (0..4).fold(0i32, |acc, j| acc.wrapping_add(i32::from(line[clamp(s - 1 + j as i64, sw) * 3 + c]).wrapping_mul(w[j])));
                out.push(v);
            }
        }
        out
    };
    let n = dw * 3;
    let lanes_end = n / 8 * 8;
    let scale = 1.0f32 / (ONE * ONE) as f32;
    let mut out = Vec::with_capacity(n * dh);
    let mut cache: Vec<(usize, Vec<i32>)> = Vec::new();
    for (s, b) in cubic_taps(sh, dh) {
        let ys: [usize; 4] = [0, 1, 2, 3].map(|j| clamp(s - 1 + j, sh));
        for y in ys {
            if !cache.iter().any(|(k, _)| *k == y) {
                cache.push((y, row(y)));
                if cache.len() > 4 {
                    cache.remove(0);
                }
            }
        }
        let rows: Vec<&Vec<i32>> = ys.iter().map(|y| &cache.iter().find(|(k, _)| k == y).expect("cached above").1).collect();
        let bf = b.map(|v| v as f32 * scale);
        // Indexing four rows at one x: an iterator over one of them would not read clearer.
        #[allow(clippy::needless_range_loop)]
        for x in 0..n {
            let v = if x < lanes_end {
                let f = |k: usize| rows[k][x] as f32 * bf[k];
                (f(0) + (f(1) + (f(2) + f(3)))).round_ties_even().clamp(0.0, 255.0) as i32
            } else {
                let sum = (0..4).fold(0i32, |acc, k| acc.wrapping_add(rows[k][x].wrapping_mul(b[k])));
                (sum.wrapping_add(1 << 21) >> 22).clamp(0, 255)
            };
            out.push(v as u8);
        }
    }
    out
}
