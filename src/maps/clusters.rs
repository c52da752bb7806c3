//! The slide job's after-step: k-means over the embeddings written, then the two pictures —
//! the thumbnail tinted by cluster (`heatmap.png`) and the patch grid coloured by cluster
//! (`clusters.png`).
//!
//! k-means needs every embedding at once: the slide job keeps them while the sink writes them
//! (4 × D bytes a patch, plus 20 bytes of position: 1.5 KB for Path Foundation's 384-d, so
//! 100,000 patches ≈ 155 MB). Nothing else holds per-patch data; decoded patches live only
//! between the reader and the encoder.

use crate::error::Result;
use crate::maps::kmeans::kmeans;
use crate::maps::render::{render_cluster_map, render_heatmap, Cell};
use crate::output::atomic::write_png;
use haidef_wsi_dicom::RgbImage;
use std::path::{Path, PathBuf};

/// What the after-step produced.
#[derive(Debug, Clone)]
pub(crate) struct ClusterMaps {
    /// Cluster of each patch, in the order given.
    pub labels: Vec<usize>,
    /// `heatmap.png`.
    pub heatmap: PathBuf,
    /// `clusters.png`.
    pub clusters: PathBuf,
}

/// Where the patches lie: the embedded level's size and grid, and the thumbnail to tint.
pub(crate) struct Layout<'a> {
    /// Thumbnail of the slide (the tissue-mask level).
    pub thumb: &'a RgbImage,
    /// Size of the embedded level in pixels.
    pub level_size: (u32, u32),
    /// Patch grid columns and rows.
    pub grid: (u32, u32),
    /// Patch side in level pixels.
    pub patch: u32,
}

/// Clusters `embeddings` (`positions.len() × dim`; `positions` are the patches' top-left
/// corners in level pixels) into `k` groups with `seed` and draws both pictures into `out_dir`
/// (written atomically).
pub(crate) fn cluster_and_draw(
    embeddings: &[f32],
    dim: usize,
    positions: &[(u32, u32)],
    layout: &Layout<'_>,
    k: usize,
    seed: u64,
    out_dir: &Path,
) -> Result<ClusterMaps> {
    let labels = kmeans(embeddings, dim, k, seed)?;
    let size = layout.patch;
    let cells: Vec<Cell> = positions.iter().zip(&labels).map(|(&(x, y), &label)| Cell { x, y, size, label }).collect();
    let heat = render_heatmap(layout.thumb, layout.level_size, &cells, k);
    let (cols, rows) = layout.grid;
    let cell_px = (1024 / cols.max(rows)).clamp(2, 32);
    let map_cells: Vec<(u32, u32, usize)> = positions.iter().zip(&labels).map(|(&(x, y), &l)| (x / size, y / size, l)).collect();
    let map = render_cluster_map(cols, rows, &map_cells, cell_px);
    let heatmap = write_png(&out_dir.join("heatmap.png"), heat.width, heat.height, &heat.data)?;
    let clusters = write_png(&out_dir.join("clusters.png"), map.width, map.height, &map.data)?;
    Ok(ClusterMaps { labels, heatmap, clusters })
}
