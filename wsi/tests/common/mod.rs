//! Helpers shared by the integration tests: fixture paths, PNG loading, image comparison.
#![allow(dead_code)]

use std::path::PathBuf;

pub fn fixtures() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../fixtures")
}

pub fn slide_dir(name: &str) -> PathBuf {
    fixtures().join("slides").join(name)
}

/// Loads a PNG as (width, height, channels, bytes).
pub fn load_png(path: &std::path::Path) -> (u32, u32, usize, Vec<u8>) {
    let file = std::fs::File::open(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let mut decoder = png::Decoder::new(std::io::BufReader::new(file));
    decoder.set_transformations(png::Transformations::EXPAND | png::Transformations::STRIP_16);
    let mut reader = decoder.read_info().unwrap();
    let mut buf = vec![0; reader.output_buffer_size().unwrap()];
    let info = reader.next_frame(&mut buf).unwrap();
    buf.truncate(info.buffer_size());
    let channels = info.color_type.samples();
    (info.width, info.height, channels, buf)
}

/// Loads a PNG as RGB8 (greyscale expanded, alpha dropped).
pub fn load_png_rgb(path: &std::path::Path) -> (u32, u32, Vec<u8>) {
    let (w, h, c, data) = load_png(path);
    let rgb = match c {
        3 => data,
        4 => data.chunks_exact(4).flat_map(|p| [p[0], p[1], p[2]]).collect(),
        1 => data.iter().flat_map(|&g| [g, g, g]).collect(),
        2 => data.chunks_exact(2).flat_map(|p| [p[0], p[0], p[0]]).collect(),
        _ => unreachable!(),
    };
    (w, h, rgb)
}

/// Per-channel mean and max absolute difference of two RGB8 buffers.
pub fn diff_stats(a: &[u8], b: &[u8]) -> ([f64; 3], [u8; 3]) {
    assert_eq!(a.len(), b.len(), "buffer sizes differ");
    let mut sum = [0u64; 3];
    let mut max = [0u8; 3];
    for (pa, pb) in a.chunks_exact(3).zip(b.chunks_exact(3)) {
        for c in 0..3 {
            let d = pa[c].abs_diff(pb[c]);
            sum[c] += u64::from(d);
            max[c] = max[c].max(d);
        }
    }
    let n = (a.len() / 3).max(1) as f64;
    (sum.map(|s| s as f64 / n), max)
}

/// The tolerance between JPEG decoders: mean ≤ 1.0 and max ≤ 8 per channel.
pub fn assert_close(what: &str, ours: &[u8], reference: &[u8]) {
    let (mean, max) = diff_stats(ours, reference);
    assert!(mean.iter().all(|m| *m <= 1.0) && max.iter().all(|m| *m <= 8), "{what}: differs from the reference: mean |Δ| per channel {mean:?}, max {max:?}");
}
