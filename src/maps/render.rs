//! Pictures of the clustering: the slide thumbnail with each embedded patch tinted by its
//! k-means cluster plus a legend, and a plain map of the clusters on the patch grid.

use haidef_wsi_dicom::RgbImage;

/// Longest side of the heatmap's thumbnail, whatever the slide size.
pub(crate) const THUMBNAIL_MAX_SIDE: u32 = 1024;

/// Distinguishable colours (Kelly's 20 colours of maximum contrast, minus white and black).
pub(crate) const PALETTE: [[u8; 3]; 20] = [
    [230, 159, 0],
    [86, 180, 233],
    [0, 158, 115],
    [213, 94, 0],
    [204, 121, 167],
    [0, 114, 178],
    [240, 228, 66],
    [128, 62, 117],
    [255, 104, 0],
    [166, 189, 215],
    [193, 0, 32],
    [206, 162, 98],
    [129, 112, 102],
    [0, 125, 52],
    [246, 118, 142],
    [0, 83, 138],
    [255, 122, 92],
    [83, 55, 122],
    [255, 142, 0],
    [179, 40, 81],
];

/// Colour of cluster `c`.
pub(crate) fn color(c: usize) -> [u8; 3] {
    PALETTE[c % PALETTE.len()]
}

/// One embedded patch on the picture: its rectangle in the embedded level's pixels and cluster.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Cell {
    /// Left edge (level pixels).
    pub x: u32,
    /// Top edge.
    pub y: u32,
    /// Side.
    pub size: u32,
    /// Cluster.
    pub label: usize,
}

/// Downsamples `img` by box averaging so that its longer side is at most `max_side`.
pub(crate) fn shrink(img: &RgbImage, max_side: u32) -> RgbImage {
    let f = (img.width.max(img.height)).div_ceil(max_side).max(1);
    if f == 1 {
        return img.clone();
    }
    let (w, h) = (img.width / f, img.height / f);
    let mut data = Vec::with_capacity((w * h * 3) as usize);
    for y in 0..h {
        for x in 0..w {
            let mut acc = [0u32; 3];
            for dy in 0..f {
                for dx in 0..f {
                    let p = img.pixel(x * f + dx, y * f + dy);
                    (0..3).for_each(|c| acc[c] += u32::from(p[c]));
                }
            }
            data.extend(acc.map(|v| (v / (f * f)) as u8));
        }
    }
    RgbImage { width: w, height: h, data }
}

/// 3×5 bitmaps of the digits, one row per 3 bits.
const DIGITS: [[u8; 5]; 10] = [
    [7, 5, 5, 5, 7],
    [2, 6, 2, 2, 7],
    [7, 1, 7, 4, 7],
    [7, 1, 7, 1, 7],
    [5, 5, 7, 1, 1],
    [7, 4, 7, 1, 7],
    [7, 4, 7, 5, 7],
    [7, 1, 1, 1, 1],
    [7, 5, 7, 5, 7],
    [7, 5, 7, 1, 7],
];

pub(crate) fn fill(img: &mut RgbImage, x: u32, y: u32, w: u32, h: u32, c: [u8; 3]) {
    for yy in y..(y + h).min(img.height) {
        for xx in x..(x + w).min(img.width) {
            let i = ((yy * img.width + xx) * 3) as usize;
            img.data[i..i + 3].copy_from_slice(&c);
        }
    }
}

/// 3×5 bitmaps of `.`, `-` and `e`, for numbers like `0.25` and `3.1e-5`, and of the few
/// lower-case letters the charts' legends and axes need (`linear`, `mil`, `test auc`,
/// `training examples`).
const SIGNS: [(char, [u8; 5]); 17] = [
    ('.', [0, 0, 0, 0, 2]),
    ('-', [0, 0, 7, 0, 0]),
    ('e', [0, 7, 5, 6, 7]),
    ('a', [0, 3, 5, 5, 3]),
    ('c', [0, 3, 4, 4, 3]),
    ('i', [2, 0, 2, 2, 2]),
    ('l', [6, 2, 2, 2, 7]),
    ('m', [0, 7, 7, 5, 5]),
    ('n', [0, 6, 5, 5, 5]),
    ('r', [0, 3, 4, 4, 4]),
    ('u', [0, 5, 5, 5, 3]),
    ('t', [2, 7, 2, 2, 3]),
    ('s', [0, 3, 4, 1, 6]),
    ('g', [0, 3, 4, 5, 3]),
    ('x', [0, 5, 2, 2, 5]),
    ('p', [0, 6, 5, 6, 4]),
    ('o', [0, 2, 5, 5, 2]),
];

/// Draws `text` (digits and the [`SIGNS`]; other characters leave a gap) at (x, y) with pixel
/// scale `s`.
pub(crate) fn text(img: &mut RgbImage, x: u32, y: u32, s: u32, text: &str) {
    for (i, ch) in text.chars().enumerate() {
        let glyph = match ch.to_digit(10) {
            Some(d) => DIGITS[d as usize],
            None => match SIGNS.iter().find(|(c, _)| *c == ch) {
                Some((_, g)) => *g,
                None => continue,
            },
        };
        for (row, bits) in glyph.iter().enumerate() {
            for col in 0..3 {
                if bits & (4 >> col) != 0 {
                    fill(img, x + (i as u32 * 4 + col) * s, y + row as u32 * s, s, s, [0, 0, 0]);
                }
            }
        }
    }
}

/// A map of values in [0, 1] on the patch grid: cell (col, row) of `cell` pixels filled with
/// its value's colour on the score scale ([`scale_color`]); cells without a value white.
pub(crate) fn render_value_map(cols: u32, rows: u32, cells: &[(u32, u32, f32)], cell: u32) -> RgbImage {
    let mut img = RgbImage::white(cols * cell, rows * cell);
    for &(c, r, v) in cells {
        fill(&mut img, c * cell, r * cell, cell, cell, scale_color(v.clamp(0.0, 1.0)));
    }
    img
}

/// Copies `thumb` into the top-left corner of `out`.
fn paste(out: &mut RgbImage, thumb: &RgbImage) {
    let row = (thumb.width * 3) as usize;
    for y in 0..thumb.height {
        let (s, d) = ((y * thumb.width * 3) as usize, (y * out.width * 3) as usize);
        out.data[d..d + row].copy_from_slice(&thumb.data[s..s + row]);
    }
}

/// Blends `colour` over `cell` (level pixels, scaled by `(sx, sy)` onto a thumbnail of `size`
/// at the top left of `out`): `keep · pixel + weight · colour` per channel.
fn tint(out: &mut RgbImage, size: (u32, u32), (sx, sy): (f64, f64), cell: &Cell, colour: [u8; 3], (keep, weight): (f64, f64)) {
    let x0 = (f64::from(cell.x) * sx).floor() as u32;
    let y0 = (f64::from(cell.y) * sy).floor() as u32;
    let x1 = ((f64::from(cell.x + cell.size) * sx).ceil() as u32).min(size.0);
    let y1 = ((f64::from(cell.y + cell.size) * sy).ceil() as u32).min(size.1);
    for y in y0..y1 {
        for x in x0..x1 {
            let i = ((y * out.width + x) * 3) as usize;
            for (p, c) in out.data[i..i + 3].iter_mut().zip(colour) {
                *p = (keep * f64::from(*p) + weight * f64::from(c)).round() as u8;
            }
        }
    }
}

/// The thumbnail (`thumb`, an image of the whole level-0 extent at any resolution) with each
/// cell tinted by its cluster (alpha 0.45) and an outline-free legend on the right listing each
/// cluster's colour, number and patch count. `level_size` is the embedded level's size.
pub(crate) fn render_heatmap(thumb: &RgbImage, level_size: (u32, u32), cells: &[Cell], k: usize) -> RgbImage {
    let thumb = shrink(thumb, THUMBNAIL_MAX_SIDE);
    let (sx, sy) = (f64::from(thumb.width) / f64::from(level_size.0), f64::from(thumb.height) / f64::from(level_size.1));
    let scale = (thumb.height / 60).clamp(2, 4);
    let row_h = 7 * scale;
    let legend_w = 4 * row_h + 12 * 4 * scale;
    let height = thumb.height.max(k as u32 * row_h + row_h);
    let mut out = RgbImage::white(thumb.width + legend_w, height);
    paste(&mut out, &thumb);
    for cell in cells {
        tint(&mut out, (thumb.width, thumb.height), (sx, sy), cell, color(cell.label), (0.55, 0.45));
    }
    let mut counts = vec![0usize; k];
    cells.iter().for_each(|c| counts[c.label] += 1);
    let lx = thumb.width + row_h / 2;
    for (label, count) in counts.iter().enumerate() {
        let y = row_h / 2 + label as u32 * row_h;
        fill(&mut out, lx, y, 5 * scale, 5 * scale, color(label));
        text(&mut out, lx + 7 * scale, y, scale, &label.to_string());
        text(&mut out, lx + 7 * scale + 12 * scale, y, scale, &count.to_string());
    }
    out
}

/// A colour scale from dark blue (low) through teal and green to yellow (high), by
/// interpolating five stops (after matplotlib's viridis, read off its published endpoints).
pub(crate) fn scale_color(t: f32) -> [u8; 3] {
    const STOPS: [[f32; 3]; 5] = [[68.0, 1.0, 84.0], [59.0, 82.0, 139.0], [33.0, 145.0, 140.0], [94.0, 201.0, 98.0], [253.0, 231.0, 37.0]];
    let t = if t.is_finite() { t.clamp(0.0, 1.0) } else { 0.0 } * 4.0;
    let i = (t.floor() as usize).min(3);
    let f = t - i as f32;
    let (a, b) = (STOPS[i], STOPS[i + 1]);
    [0, 1, 2].map(|c| (a[c] + (b[c] - a[c]) * f).round() as u8)
}

/// A number short enough for the legend: 3 decimals from 0.01 up, else 2 significant digits
/// with an exponent.
fn short_number(v: f32) -> String {
    if v == 0.0 || v.abs() >= 0.01 {
        format!("{v:.3}")
    } else {
        format!("{v:.1e}")
    }
}

/// The thumbnail with each scored cell coloured by its score on [`scale_color`] (alpha 0.6),
/// the scale running from the lowest score on the slide to the highest, and a legend on the
/// right: a colour bar with the highest value at its top and the lowest at its bottom.
/// `cells` carry their rectangle (label unused); `scores` has one value per cell.
pub(crate) fn render_score_map(thumb: &RgbImage, level_size: (u32, u32), cells: &[Cell], scores: &[f32]) -> RgbImage {
    let thumb = shrink(thumb, THUMBNAIL_MAX_SIDE);
    let (sx, sy) = (f64::from(thumb.width) / f64::from(level_size.0), f64::from(thumb.height) / f64::from(level_size.1));
    let scale = (thumb.height / 60).clamp(2, 4);
    let (lo, hi) = scores.iter().fold((f32::INFINITY, f32::NEG_INFINITY), |(a, b), v| (a.min(*v), b.max(*v)));
    let span = if hi > lo { hi - lo } else { 1.0 };
    let legend_w = 6 * scale + 10 * 4 * scale + 4 * scale;
    let bar_h = (thumb.height.max(60 * scale) - 14 * scale).max(20);
    let height = thumb.height.max(bar_h + 14 * scale);
    let mut out = RgbImage::white(thumb.width + legend_w, height);
    paste(&mut out, &thumb);
    for (cell, v) in cells.iter().zip(scores) {
        tint(&mut out, (thumb.width, thumb.height), (sx, sy), cell, scale_color((v - lo) / span), (0.4, 0.6));
    }
    // The bar: top = highest score.
    let (bx, by) = (thumb.width + 2 * scale, 7 * scale);
    for row in 0..bar_h {
        let t = 1.0 - row as f32 / (bar_h - 1).max(1) as f32;
        fill(&mut out, bx, by + row, 4 * scale, 1, scale_color(t));
    }
    text(&mut out, bx + 6 * scale, by, scale, &short_number(hi));
    text(&mut out, bx + 6 * scale, by + bar_h - 5 * scale, scale, &short_number(lo));
    out
}

/// The patch grid (`cols x rows`) with each embedded patch in its cluster's colour and the
/// others light grey; each cell is drawn `cell` pixels wide.
pub(crate) fn render_cluster_map(cols: u32, rows: u32, cells: &[(u32, u32, usize)], cell: u32) -> RgbImage {
    let mut out = RgbImage { width: cols * cell, height: rows * cell, data: Vec::new() };
    out.data = [235u8, 235, 235].repeat((out.width * out.height) as usize);
    for &(col, row, label) in cells {
        fill(&mut out, col * cell, row * cell, cell, cell, color(label));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tints_cells_and_draws_a_legend() {
        let thumb = RgbImage::white(100, 50);
        let cells = [Cell { x: 0, y: 0, size: 224, label: 1 }];
        let img = render_heatmap(&thumb, (1000, 500), &cells, 2);
        assert!(img.width > 100 && img.height >= 50);
        // Inside the cell: white blended with colour 1; outside: white.
        let c = color(1);
        let blended: Vec<u8> = (0..3).map(|i| (0.55 * 255.0 + 0.45 * f64::from(c[i])).round() as u8).collect();
        assert_eq!(img.pixel(5, 5).to_vec(), blended);
        assert_eq!(img.pixel(60, 40), [255, 255, 255]);
        let map = render_cluster_map(3, 2, &[(2, 1, 0)], 4);
        assert_eq!((map.width, map.height), (12, 8));
        assert_eq!(map.pixel(9, 5), color(0));
        assert_eq!(map.pixel(0, 0), [235, 235, 235]);
        let big = RgbImage::white(5000, 3000);
        let s = shrink(&big, 1024);
        assert!(s.width <= 1024 && s.height <= 1024);
    }
}
