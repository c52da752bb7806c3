//! Assembling a rectangle of a tiled image from decoded tiles, line by line, so every output
//! byte is written once (no fill-then-copy).

/// Appends the RGB8 pixels of rectangle (x, y, w, h) of an image of `image_size` cut into
/// `tile_size` tiles to `out`. `tile(tx, ty)` gives a decoded tile (row-major RGB8 of the full
/// tile size) or `None` for an absent tile; absent tiles and pixels outside the image are white.
pub(crate) fn compose<'a>(
    out: &mut Vec<u8>,
    (x, y, w, h): (i64, i64, u32, u32),
    (width, height): (u32, u32),
    (tw, th): (u32, u32),
    tile: impl Fn(u32, u32) -> Option<&'a [u8]>,
) {
    let (width, height, tw64, th64) = (i64::from(width), i64::from(height), i64::from(tw), i64::from(th));
    let white = |out: &mut Vec<u8>, n: i64| out.resize(out.len() + n as usize * 3, 255);
    out.reserve(w as usize * h as usize * 3);
    for gy in y..y + i64::from(h) {
        if gy < 0 || gy >= height {
            white(out, i64::from(w));
            continue;
        }
        let (ty, ly) = ((gy / th64) as u32, (gy % th64) as usize);
        let mut px = x;
        let end = x + i64::from(w);
        while px < end {
            if px < 0 {
                let n = (-px).min(end - px);
                white(out, n);
                px += n;
                continue;
            }
            if px >= width {
                white(out, end - px);
                break;
            }
            let tx = (px / tw64) as u32;
            let seg_end = end.min((i64::from(tx) + 1) * tw64).min(width);
            let n = (seg_end - px) as usize;
            match tile(tx, ty) {
                Some(t) => {
                    let start = (ly * tw as usize + (px - i64::from(tx) * tw64) as usize) * 3;
                    out.extend_from_slice(&t[start..start + n * 3]);
                }
                None => white(out, n as i64),
            }
            px = seg_end;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::compose;

    /// A 5×3 image in 2×2 tiles whose pixel (x, y) is [x, y, 7]; tile (1, 0) absent.
    fn tile(tx: u32, ty: u32) -> Option<Vec<u8>> {
        if (tx, ty) == (1, 0) {
            return None;
        }
        Some((0..4).flat_map(|i| [(tx * 2 + i % 2) as u8, (ty * 2 + i / 2) as u8, 7]).collect())
    }

    #[test]
    fn composes_across_tiles_edges_and_holes() {
        let tiles: Vec<Vec<Option<Vec<u8>>>> = (0..2).map(|ty| (0..3).map(|tx| tile(tx, ty)).collect()).collect();
        let lookup = |tx: u32, ty: u32| tiles[ty as usize][tx as usize].as_deref();
        let mut out = Vec::new();
        compose(&mut out, (-1, -1, 8, 5), (5, 3), (2, 2), lookup);
        assert_eq!(out.len(), 8 * 5 * 3);
        for oy in 0..5i64 {
            for ox in 0..8i64 {
                let (gx, gy) = (ox - 1, oy - 1);
                let i = ((oy * 8 + ox) * 3) as usize;
                let inside = (0..5).contains(&gx) && (0..3).contains(&gy);
                let hole = (2..4).contains(&gx) && (0..2).contains(&gy);
                let expected = if inside && !hole { [gx as u8, gy as u8, 7] } else { [255, 255, 255] };
                assert_eq!(&out[i..i + 3], &expected, "({gx},{gy})");
            }
        }
    }
}
