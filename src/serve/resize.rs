//! `extensions.image_dimensions` for inline images: the whole image resized to the asked size
//! before patches are cut, as Google's server does it, bit for bit.
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
