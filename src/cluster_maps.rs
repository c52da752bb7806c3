//! The slide job's after-step: k-means over the embeddings written, then the two pictures —
//! the thumbnail tinted by cluster (`heatmap.png`) and the patch grid coloured by cluster
//! (`clusters.png`).
//!
//! k-means needs every embedding at once: the slide job keeps them while the sink writes them
//! (4 × D bytes a patch, plus 20 bytes of position: 1.5 KB for Path Foundation's 384-d, so
//! 100,000 patches ≈ 155 MB). Nothing else holds per-patch data; decoded patches live only
//! between the reader and the encoder.

use crate::atomic::write_png;
use crate::clusters::kmeans;
use crate::error::Result;
use crate::heatmap::{render_cluster_map, render_heatmap, Cell};
use crate::sink::PatchRecord;
use haidef_wsi_dicom::RgbImage;
use std::path::{Path, PathBuf};

/// What the after-step produced.
#[derive(Debug, Clone)]
pub struct ClusterMaps {
    /// Cluster of each patch, in the order given.
    pub labels: Vec<usize>,
    /// `heatmap.png`.
    pub heatmap: PathBuf,
    /// `clusters.png`.
    pub clusters: PathBuf,
}

/// Where the patches lie: the embedded level's size and grid, and the thumbnail to tint.
pub struct Layout<'a> {
    /// Thumbnail of the slide (the tissue-mask level).
    pub thumb: &'a RgbImage,
    /// Size of the embedded level in pixels.
    pub level_size: (u32, u32),
    /// Patch grid columns and rows.
    pub grid: (u32, u32),
    /// Patch side in level pixels.
    pub patch: u32,
}

/// Clusters `embeddings` (`records.len() × dim`) into `k` groups with `seed` and draws both
/// pictures into `out_dir` (written atomically).
pub fn cluster_and_draw(embeddings: &[f32], dim: usize, records: &[PatchRecord], layout: &Layout<'_>, k: usize, seed: u64, out_dir: &Path) -> Result<ClusterMaps> {
    let labels = kmeans(embeddings, dim, k, seed)?;
    let size = layout.patch;
    let cells: Vec<Cell> = records.iter().zip(&labels).map(|(r, &label)| Cell { x: r.x, y: r.y, size, label }).collect();
    let heat = render_heatmap(layout.thumb, layout.level_size, &cells, k);
    let (cols, rows) = layout.grid;
    let cell_px = (1024 / cols.max(rows)).clamp(2, 32);
    let map_cells: Vec<(u32, u32, usize)> = records.iter().zip(&labels).map(|(r, &l)| (r.x / size, r.y / size, l)).collect();
    let map = render_cluster_map(cols, rows, &map_cells, cell_px);
    let heatmap = write_png(&out_dir.join("heatmap.png"), heat.width, heat.height, &heat.data)?;
    let clusters = write_png(&out_dir.join("clusters.png"), map.width, map.height, &map.data)?;
    Ok(ClusterMaps { labels, heatmap, clusters })
}
