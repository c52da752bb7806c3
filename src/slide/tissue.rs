//! Tissue detection on a low-resolution level: Otsu's threshold on HSV saturation (stained
//! tissue is coloured, glass is grey-white), small specks removed, then mapped to the patch grid
//! of the level being embedded as a tissue fraction per patch.

use haidef_wsi_dicom::{Level, RgbImage, Slide};

/// Longest side of the level used for the tissue mask.
pub const MASK_MAX_SIDE: u32 = 2048;

/// A binary tissue mask over a whole level.
#[derive(Debug, Clone)]
pub struct TissueMask {
    /// Mask width (pixels of the level it was computed on).
    pub width: u32,
    /// Mask height.
    pub height: u32,
    /// Level-0-relative scale: mask pixels per level-0 pixel, per axis.
    scale: (f64, f64),
    /// Row-major, true where tissue.
    pub mask: Vec<bool>,
}

/// The level the mask is computed on: the largest whose longer side is ≤ [`MASK_MAX_SIDE`]
/// (or the smallest level when all are larger).
pub fn mask_level(slide: &Slide) -> &Level {
    slide.levels().iter().find(|l| l.width().max(l.height()) <= MASK_MAX_SIDE).unwrap_or_else(|| slide.levels().last().expect("a slide has levels"))
}

/// Saturation of each pixel, 0..=255 (HSV: (max − min) / max).
fn saturation(img: &RgbImage) -> Vec<u8> {
    img.data
        .chunks_exact(3)
        .map(|p| {
            let max = p[0].max(p[1]).max(p[2]);
            let min = p[0].min(p[1]).min(p[2]);
            if max == 0 {
                0
            } else {
                ((u32::from(max - min) * 255 + u32::from(max) / 2) / u32::from(max)) as u8
            }
        })
        .collect()
}

/// Otsu's threshold of a histogram: the level maximising the between-class variance.
fn otsu(hist: &[u64; 256]) -> u8 {
    let total: u64 = hist.iter().sum();
    let sum_all: f64 = hist.iter().enumerate().map(|(i, &n)| i as f64 * n as f64).sum();
    let (mut w0, mut sum0, mut best, mut best_t) = (0u64, 0f64, -1f64, 0u8);
    for (t, &n) in hist.iter().enumerate() {
        w0 += n;
        if w0 == 0 {
            continue;
        }
        let w1 = total - w0;
        if w1 == 0 {
            break;
        }
        sum0 += t as f64 * n as f64;
        let (m0, m1) = (sum0 / w0 as f64, (sum_all - sum0) / w1 as f64);
        let between = w0 as f64 * w1 as f64 * (m0 - m1) * (m0 - m1);
        if between > best {
            best = between;
            best_t = t as u8;
        }
    }
    best_t
}

/// Below this saturation nothing counts as tissue, whatever Otsu says (an empty slide has
/// only grey noise to split).
const MIN_TISSUE_SATURATION: u8 = 20;

impl TissueMask {
    /// Computes the mask of `img`, a whole level of `level0_size` (width, height) at level 0.
    pub fn from_image(img: &RgbImage, level0_size: (u32, u32)) -> Self {
        let sat = saturation(img);
        let mut hist = [0u64; 256];
        sat.iter().for_each(|&s| hist[s as usize] += 1);
        let threshold = otsu(&hist).max(MIN_TISSUE_SATURATION);
        let mut mask: Vec<bool> = sat.iter().map(|&s| s > threshold).collect();
        remove_small_components(&mut mask, img.width as usize, img.height as usize);
        TissueMask {
            width: img.width,
            height: img.height,
            scale: (f64::from(img.width) / f64::from(level0_size.0), f64::from(img.height) / f64::from(level0_size.1)),
            mask,
        }
    }

    /// Fraction of tissue pixels in the mask.
    pub fn coverage(&self) -> f64 {
        self.mask.iter().filter(|m| **m).count() as f64 / self.mask.len().max(1) as f64
    }

    /// Tissue fraction of the rectangle (x, y, w, h) of a level whose size is `level_size` and
    /// whose level 0 is `level0_size`; at least the mask pixel under its centre is sampled.
    pub fn fraction(&self, (x, y, w, h): (u32, u32, u32, u32), level_size: (u32, u32), level0_size: (u32, u32)) -> f32 {
        // level pixels → level-0 pixels → mask pixels
        let fx = f64::from(level0_size.0) / f64::from(level_size.0) * self.scale.0;
        let fy = f64::from(level0_size.1) / f64::from(level_size.1) * self.scale.1;
        let x0 = (f64::from(x) * fx).floor() as u32;
        let y0 = (f64::from(y) * fy).floor() as u32;
        let x1 = ((f64::from(x + w) * fx).ceil() as u32).clamp(x0 + 1, self.width.max(x0 + 1));
        let y1 = ((f64::from(y + h) * fy).ceil() as u32).clamp(y0 + 1, self.height.max(y0 + 1));
        let (mut n, mut t) = (0u32, 0u32);
        for my in y0.min(self.height - 1)..y1.min(self.height) {
            for mx in x0.min(self.width - 1)..x1.min(self.width) {
                n += 1;
                t += u32::from(self.mask[(my * self.width + mx) as usize]);
            }
        }
        if n == 0 {
            0.0
        } else {
            t as f32 / n as f32
        }
    }
}

/// Clears 4-connected tissue components smaller than 0.05% of the image (at least 16 pixels):
/// dust, pen dots and noise.
fn remove_small_components(mask: &mut [bool], w: usize, h: usize) {
    let min = ((w * h) / 2000).max(16);
    let mut seen = vec![false; mask.len()];
    let mut stack = Vec::new();
    let mut component = Vec::new();
    for start in 0..mask.len() {
        if !mask[start] || seen[start] {
            continue;
        }
        component.clear();
        stack.push(start);
        seen[start] = true;
        while let Some(i) = stack.pop() {
            component.push(i);
            let (x, y) = (i % w, i / w);
            let mut visit = |j: usize| {
                if mask[j] && !seen[j] {
                    seen[j] = true;
                    stack.push(j);
                }
            };
            if x > 0 {
                visit(i - 1);
            }
            if x + 1 < w {
                visit(i + 1);
            }
            if y > 0 {
                visit(i - w);
            }
            if y + 1 < h {
                visit(i + w);
            }
        }
        if component.len() < min {
            component.iter().for_each(|&i| mask[i] = false);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn image(w: u32, h: u32, f: impl Fn(u32, u32) -> [u8; 3]) -> RgbImage {
        let f = &f;
        RgbImage { width: w, height: h, data: (0..h).flat_map(|y| (0..w).flat_map(move |x| f(x, y))).collect() }
    }

    #[test]
    fn finds_stained_tissue_on_glass_and_drops_specks() {
        // Glass (near white) with a pink tissue block on the left half and one pink speck.
        let img = image(100, 50, |x, y| if x < 50 || (x == 80 && y == 10) { [200, 100, 160] } else { [240 + (x % 3) as u8, 240, 238] });
        let m = TissueMask::from_image(&img, (1000, 500));
        assert!(!m.mask[(10 * 100 + 80) as usize], "speck kept");
        assert!((m.coverage() - 0.5).abs() < 1e-9, "coverage {}", m.coverage());
        // A level-0 patch fully on the tissue, one on glass, one straddling.
        assert_eq!(m.fraction((0, 0, 224, 224), (1000, 500), (1000, 500)), 1.0);
        assert_eq!(m.fraction((600, 100, 224, 224), (1000, 500), (1000, 500)), 0.0);
        let half = m.fraction((388, 0, 224, 224), (1000, 500), (1000, 500));
        assert!((0.4..0.6).contains(&half), "{half}");
        // The same place on a level at half resolution.
        assert_eq!(m.fraction((0, 0, 112, 112), (500, 250), (1000, 500)), 1.0);
    }

    #[test]
    fn blank_glass_has_no_tissue() {
        let img = image(64, 64, |x, y| [235 + ((x * 7 + y * 3) % 9) as u8, 236, 234]);
        let m = TissueMask::from_image(&img, (64, 64));
        assert_eq!(m.coverage(), 0.0);
    }

    #[test]
    fn otsu_splits_two_modes() {
        let mut h = [0u64; 256];
        h[10] = 100;
        h[200] = 100;
        let t = otsu(&h);
        assert!((10..200).contains(&t), "{t}");
    }
}
