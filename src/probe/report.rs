//! What `train_probe` writes besides the model: `curve.csv` (model, training size, repeat,
//! AUC and its interval), `curve.png` (AUC against training examples on a log₂ axis, one line
//! per model through the mean AUC over repeats, shaded between the mean interval bounds), and
//! `metrics.json` is written by the caller from [`Trained`].

use crate::maps::render::{fill, text, PALETTE};
use crate::probe::error::{ProbeError, ProbeResult};
use crate::probe::train::{CurvePoint, Trained};
use haidef_wsi_dicom::RgbImage;
use std::collections::BTreeMap;
use std::path::Path;

/// Writes `curve.csv`.
pub fn write_curve_csv(path: &Path, curve: &[CurvePoint]) -> ProbeResult<()> {
    let mut s = String::from("model,train_size,repeat,auc,auc_low,auc_high\n");
    for p in curve {
        s.push_str(&format!("{},{},{},{},{},{}\n", p.model, p.train_size, p.repeat, p.auc.auc, p.auc.low, p.auc.high));
    }
    std::fs::write(path, s).map_err(|e| ProbeError::file(path, e))
}

/// Per model: (training size, mean AUC, mean low, mean high) in size order.
pub fn curve_means(curve: &[CurvePoint]) -> BTreeMap<&'static str, Vec<(usize, f64, f64, f64)>> {
    let mut acc: BTreeMap<&'static str, BTreeMap<usize, Vec<&CurvePoint>>> = BTreeMap::new();
    curve.iter().for_each(|p| acc.entry(p.model).or_default().entry(p.train_size).or_default().push(p));
    acc.into_iter()
        .map(|(m, sizes)| {
            let pts = sizes
                .into_iter()
                .map(|(n, ps)| {
                    let k = ps.len() as f64;
                    (
                        n,
                        ps.iter().map(|p| p.auc.auc).sum::<f64>() / k,
                        ps.iter().map(|p| p.auc.low).sum::<f64>() / k,
                        ps.iter().map(|p| p.auc.high).sum::<f64>() / k,
                    )
                })
                .collect();
            (m, pts)
        })
        .collect()
}

/// Draws the curve (800 × 480): AUC from the lowest interval bound (at most 0.5) to 1 on the
/// vertical axis, training examples on a log₂ horizontal axis, a legend at the bottom right.
pub fn draw_curve(path: &Path, trained: &Trained) -> ProbeResult<()> {
    let means = curve_means(&trained.curve);
    let (w, h) = (800u32, 480u32);
    let (left, right, top, bottom) = (70u32, 20u32, 20u32, 50u32);
    let (pw, ph) = (w - left - right, h - top - bottom);
    let mut img = RgbImage::white(w, h);
    let all: Vec<&(usize, f64, f64, f64)> = means.values().flatten().collect();
    if all.is_empty() {
        return Ok(());
    }
    let ymin = (all.iter().map(|p| p.2).fold(0.5f64, f64::min) * 10.0).floor() / 10.0;
    let (xmin, xmax) = (all.iter().map(|p| p.0).min().unwrap_or(1) as f64, all.iter().map(|p| p.0).max().unwrap_or(2) as f64);
    let span = (xmax.log2() - xmin.log2()).max(1.0);
    let px = |n: f64| left as f64 + (n.log2() - xmin.log2()) / span * pw as f64;
    let py = |a: f64| top as f64 + (1.0 - (a - ymin) / (1.0 - ymin)) * ph as f64;
    // Axes and grid.
    fill(&mut img, left, top, 1, ph, [0, 0, 0]);
    fill(&mut img, left, top + ph, pw, 1, [0, 0, 0]);
    let mut t = ymin;
    while t <= 1.0 + 1e-9 {
        let y = py(t).round() as u32;
        fill(&mut img, left + 1, y, pw, 1, [225, 225, 225]);
        text(&mut img, 10, y.saturating_sub(5), 2, &format!("{t:.1}"));
        t += 0.1;
    }
    text(&mut img, left + 8, top + ph - 16, 2, "test auc");
    let axis = "training examples";
    text(&mut img, (left + pw / 2).saturating_sub(axis.len() as u32 * 4), top + ph + 32, 2, axis);
    let sizes: std::collections::BTreeSet<usize> = all.iter().map(|p| p.0).collect();
    for &n in &sizes {
        let x = px(n as f64).round() as u32;
        fill(&mut img, x, top + ph, 1, 6, [0, 0, 0]);
        let label = n.to_string();
        text(&mut img, x.saturating_sub(label.len() as u32 * 4), top + ph + 12, 2, &label);
    }
    for (m, (model, pts)) in means.iter().enumerate() {
        let colour = PALETTE[m % PALETTE.len()];
        let light = colour.map(|c| (0.3 * f64::from(c) + 0.7 * 255.0) as u8);
        // The band: each column between its interpolated low and high.
        for seg in pts.windows(2) {
            let (a, b) = (seg[0], seg[1]);
            let (x0, x1) = (px(a.0 as f64), px(b.0 as f64));
            for x in x0.round() as u32..=x1.round() as u32 {
                let f = if x1 > x0 { (x as f64 - x0) / (x1 - x0) } else { 0.0 };
                let (lo, hi) = (a.2 + (b.2 - a.2) * f, a.3 + (b.3 - a.3) * f);
                let (y0, y1) = (py(hi).round() as u32, py(lo).round() as u32);
                for y in y0..=y1.min(top + ph - 1) {
                    let i = ((y * w + x) * 3) as usize;
                    if img.data[i..i + 3] == [255, 255, 255] || img.data[i..i + 3] == [225, 225, 225] {
                        img.data[i..i + 3].copy_from_slice(&light);
                    }
                }
            }
        }
        for seg in pts.windows(2) {
            line(&mut img, (px(seg[0].0 as f64), py(seg[0].1)), (px(seg[1].0 as f64), py(seg[1].1)), colour);
        }
        for p in pts {
            fill(&mut img, (px(p.0 as f64) as u32).saturating_sub(3), (py(p.1) as u32).saturating_sub(3), 7, 7, colour);
        }
        let ly = top + ph - 30 - 24 * m as u32;
        fill(&mut img, left + pw - 150, ly, 24, 12, colour);
        text(&mut img, left + pw - 118, ly, 2, model);
    }
    crate::output::atomic::write_png(path, w, h, &img.data).map(|_| ()).map_err(|e| ProbeError::file(path, e))
}

/// A 3-pixel-wide line from `a` to `b`.
fn line(img: &mut RgbImage, a: (f64, f64), b: (f64, f64), c: [u8; 3]) {
    let steps = ((b.0 - a.0).abs().max((b.1 - a.1).abs()).ceil() as usize).max(1);
    for s in 0..=steps {
        let t = s as f64 / steps as f64;
        let (x, y) = (a.0 + (b.0 - a.0) * t, a.1 + (b.1 - a.1) * t);
        fill(img, (x as u32).saturating_sub(1), (y as u32).saturating_sub(1), 3, 3, c);
    }
}
