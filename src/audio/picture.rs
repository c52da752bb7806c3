//! The audio job's picture: one recording's mel-PCEN spectrogram (what HeAR's front end
//! computes, over the whole recording: time left to right, low bands at the bottom) beside
//! the cosine similarity of its windows' embeddings (window i's row, window j's column; the
//! diagonal is 1). Repeated sounds show as bright off-diagonal cells at the times they recur.

use crate::error::Result;
use crate::maps::render::scale_color;
use crate::output::atomic::write_png;
use haidef_wsi_encoders::candle::{Device, Tensor};
use haidef_wsi_encoders::{FrontEnd, FrontEndConfig};
use std::path::{Path, PathBuf};

/// At most this many seconds of the recording are drawn.
pub(crate) const MAX_SECONDS: f64 = 30.0;
/// Pixels per mel band in height, and per STFT frame (10 ms) in width.
const BAND_PX: u32 = 2;
/// Side of the similarity matrix in pixels.
const MATRIX_PX: u32 = 256;
const GAP_PX: u32 = 16;

/// The whole-recording mel-PCEN of up to [`MAX_SECONDS`] of `signal` (at the front end's
/// rate): `(frames, mel_bins)` row-major, with the number of frames.
pub(crate) fn recording_spectrogram(signal: &[f32], base: &FrontEndConfig) -> Result<(Vec<f32>, usize)> {
    let n = signal.len().min((MAX_SECONDS * f64::from(base.sample_rate)) as usize).max(1);
    let mut clip = signal[..n.min(signal.len())].to_vec();
    clip.resize(n, 0.0);
    let mut cfg = FrontEndConfig { clip_samples: n, ..base.clone() };
    cfg.out_height = cfg.frames();
    let fe = FrontEnd::new(cfg, &Device::Cpu)?;
    let pcen = fe.mel_pcen(&Tensor::from_vec(clip, (1, n), &Device::Cpu).map_err(haidef_wsi_encoders::EncoderError::from)?)?;
    let frames = fe.config().frames();
    let values = pcen.flatten_all().and_then(|t| t.to_vec1::<f32>()).map_err(haidef_wsi_encoders::EncoderError::from)?;
    Ok((values, frames))
}

/// Cosine similarities of `n` embeddings of `dim` floats, `(n, n)` row-major.
pub(crate) fn cosine_matrix(embeddings: &[f32], dim: usize) -> Vec<f32> {
    let rows: Vec<&[f32]> = embeddings.chunks_exact(dim).collect();
    let norms: Vec<f32> = rows.iter().map(|r| r.iter().map(|v| v * v).sum::<f32>().sqrt().max(f32::MIN_POSITIVE)).collect();
    let n = rows.len();
    let mut out = vec![0.0; n * n];
    for i in 0..n {
        for j in 0..n {
            out[i * n + j] = rows[i].iter().zip(rows[j]).map(|(a, b)| a * b).sum::<f32>() / (norms[i] * norms[j]);
        }
    }
    out
}

/// Draws the spectrogram (`frames × mels`) beside the `n × n` similarity matrix and writes the
/// PNG atomically. Each panel is scaled from its own lowest to highest value.
pub(crate) fn draw(spectrogram: &[f32], frames: usize, mels: usize, similarity: &[f32], n: usize, out: &Path) -> Result<PathBuf> {
    let (spec_w, spec_h) = (frames as u32, mels as u32 * BAND_PX);
    let height = spec_h.max(MATRIX_PX);
    let width = spec_w + GAP_PX + MATRIX_PX;
    let mut rgb = vec![255u8; (width * height * 3) as usize];
    let mut put = |x: u32, y: u32, c: [u8; 3]| {
        let i = ((y * width + x) * 3) as usize;
        rgb[i..i + 3].copy_from_slice(&c);
    };
    let range = |v: &[f32]| {
        let (lo, hi) = v.iter().filter(|x| x.is_finite()).fold((f32::MAX, f32::MIN), |(a, b), &x| (a.min(x), b.max(x)));
        (lo, (hi - lo).max(f32::MIN_POSITIVE))
    };
    let (lo, span) = range(spectrogram);
    for x in 0..spec_w {
        for y in 0..spec_h {
            // Low bands at the bottom.
            let band = mels - 1 - (y / BAND_PX) as usize;
            put(x, y, scale_color((spectrogram[x as usize * mels + band] - lo) / span));
        }
    }
    if n > 0 {
        let (lo, span) = range(similarity);
        let cell = (MATRIX_PX / n as u32).max(1);
        let x0 = spec_w + GAP_PX;
        for y in 0..(cell * n as u32).min(MATRIX_PX) {
            for x in 0..(cell * n as u32).min(MATRIX_PX) {
                let (i, j) = ((y / cell) as usize, (x / cell) as usize);
                put(x0 + x, y, scale_color((similarity[i * n + j] - lo) / span));
            }
        }
    }
    write_png(out, width, height, &rgb)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cosines_of_parallel_and_orthogonal_vectors() {
        let m = cosine_matrix(&[1.0, 0.0, 2.0, 0.0, 0.0, 3.0], 2);
        assert_eq!(m.len(), 9);
        assert!((m[1] - 1.0).abs() < 1e-6 && m[2].abs() < 1e-6 && (m[8] - 1.0).abs() < 1e-6);
    }
}
