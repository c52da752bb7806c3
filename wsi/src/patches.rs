//! The non-overlapping (by default) square patch grid over a level, streamed row by row.
//!
//! Patches are produced in row-major order. Only the band of frame rows under the current patch
//! row is held decoded, so memory depends on the level's width, not its height, and each frame
//! is decoded once per pass. Frames of a band are decoded in parallel on rayon, and patches of a
//! row are cut in parallel.

use crate::error::{Result, WsiError};
use crate::level::{Level, Tile};
use crate::rgb::copy_rect;
use rayon::prelude::*;
use std::collections::VecDeque;

/// Patch size and stride.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PatchGridOptions {
    /// Side of a square patch in pixels (Path Foundation: 224).
    pub size: u32,
    /// Distance between the origins of neighbouring patches (equal to `size`: no overlap).
    pub stride: u32,
}

impl Default for PatchGridOptions {
    fn default() -> Self {
        PatchGridOptions { size: 224, stride: 224 }
    }
}

/// One patch: its place in the grid, its pixel origin in the level, and its RGB8 pixels.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Patch {
    /// Grid column.
    pub col: u32,
    /// Grid row.
    pub row: u32,
    /// Left edge in level pixels.
    pub x: u32,
    /// Top edge in level pixels.
    pub y: u32,
    /// Side in pixels.
    pub size: u32,
    /// `size * size * 3` bytes, RGB8, row-major.
    pub rgb: Vec<u8>,
}

/// The grid of patches that lie fully inside a level.
#[derive(Debug, Clone)]
pub struct PatchGrid {
    level: Level,
    options: PatchGridOptions,
    cols: u32,
    rows: u32,
}

impl PatchGrid {
    /// The grid of `options.size` patches every `options.stride` pixels over `level`, keeping
    /// only patches fully inside it.
    pub fn new(level: &Level, options: PatchGridOptions) -> Result<Self> {
        if options.size == 0 || options.stride == 0 {
            return Err(WsiError::InvalidArgument(format!(
                "patch size ({}) and stride ({}) must be positive",
                options.size, options.stride
            )));
        }
        let fit = |len: u32| if len < options.size { 0 } else { (len - options.size) / options.stride + 1 };
        Ok(PatchGrid { level: level.clone(), options, cols: fit(level.width()), rows: fit(level.height()) })
    }

    /// Patches across.
    pub fn cols(&self) -> u32 {
        self.cols
    }

    /// Patches down.
    pub fn rows(&self) -> u32 {
        self.rows
    }

    /// Number of patches.
    pub fn len(&self) -> usize {
        self.cols as usize * self.rows as usize
    }

    /// Whether the level is smaller than one patch.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The options this grid was made with.
    pub fn options(&self) -> PatchGridOptions {
        self.options
    }

    /// Pixel origin (x, y) of patch (col, row).
    pub fn origin(&self, col: u32, row: u32) -> (u32, u32) {
        (col * self.options.stride, row * self.options.stride)
    }

    /// All (x, y) origins in row-major order, without reading pixels.
    pub fn positions(&self) -> impl Iterator<Item = (u32, u32)> + '_ {
        (0..self.rows).flat_map(move |r| (0..self.cols).map(move |c| self.origin(c, r)))
    }

    /// Streams the grid one patch row at a time.
    pub fn rows_iter(&self) -> PatchRows {
        PatchRows { grid: self.clone(), next_row: 0, band: VecDeque::new(), failed: false }
    }

    /// Streams the grid one patch at a time, in row-major order.
    pub fn iter(&self) -> impl Iterator<Item = Result<Patch>> {
        self.rows_iter().flat_map(|row| match row {
            Ok(patches) => patches.into_iter().map(Ok).collect::<Vec<_>>(),
            Err(e) => vec![Err(e)],
        })
    }
}

/// Iterator over patch rows; see [`PatchGrid::rows_iter`]. Stops after the first error.
#[derive(Debug)]
pub struct PatchRows {
    grid: PatchGrid,
    next_row: u32,
    /// Decoded frame rows currently held: (tile row, tiles of that row).
    band: VecDeque<(u32, Vec<Option<Tile>>)>,
    failed: bool,
}

impl PatchRows {
    /// Tile columns any patch touches.
    fn tiles_across(&self) -> u32 {
        let g = &self.grid;
        let (tw, _) = g.level.tile_size();
        ((g.cols - 1) * g.options.stride + g.options.size - 1) / tw + 1
    }

    fn tile_rows_of(&self, row: u32) -> (u32, u32) {
        let (_, th) = self.grid.level.tile_size();
        let y0 = row * self.grid.options.stride;
        (y0 / th, (y0 + self.grid.options.size - 1) / th)
    }

    fn next_patch_row(&mut self, row: u32) -> Result<Vec<Patch>> {
        let level = &self.grid.level;
        let (ty_a, ty_b) = self.tile_rows_of(row);
        while self.band.front().is_some_and(|(ty, _)| *ty < ty_a) {
            self.band.pop_front();
        }
        let across = self.tiles_across();
        let have = self.band.back().map(|(ty, _)| ty + 1).unwrap_or(ty_a).max(ty_a);
        // Hint the frames of the band after this one (network sources fetch them in batches).
        if row + 1 < self.grid.rows {
            let (na, nb) = self.tile_rows_of(row + 1);
            let next: Vec<u32> = (na.max(ty_b + 1)..=nb)
                .flat_map(|ty| (0..across).filter_map(move |tx| level.frame_at(tx, ty)))
                .collect();
            if !next.is_empty() {
                level.frame_source().prefetch(&next);
            }
        }
        let wanted: Vec<(u32, u32)> = (have..=ty_b).flat_map(|ty| (0..across).map(move |tx| (tx, ty))).collect();
        let decoded: Vec<Option<Tile>> =
            wanted.par_iter().map(|&(tx, ty)| level.read_tile(tx, ty)).collect::<Result<_>>()?;
        let mut decoded = decoded.into_iter();
        for ty in have..=ty_b {
            self.band.push_back((ty, decoded.by_ref().take(across as usize).collect()));
        }

        let (tw, th) = level.tile_size();
        let size = self.grid.options.size;
        let band = &self.band;
        let grid = &self.grid;
        let patches = (0..grid.cols)
            .into_par_iter()
            .map(|col| {
                let (x, y) = grid.origin(col, row);
                let mut rgb = vec![255u8; size as usize * size as usize * 3];
                for (ty, tiles) in band.iter().filter(|(ty, _)| (ty_a..=ty_b).contains(ty)) {
                    for tx in x / tw..=(x + size - 1) / tw {
                        let Some(tile) = &tiles[tx as usize] else { continue };
                        let (tx0, ty0) = (tx * tw, ty * th);
                        let (ix0, iy0) = (x.max(tx0), y.max(ty0));
                        let (ix1, iy1) = ((x + size).min(tx0 + tw), (y + size).min(ty0 + th));
                        copy_rect(
                            tile,
                            tw as usize,
                            ((ix0 - tx0) as usize, (iy0 - ty0) as usize, (ix1 - ix0) as usize, (iy1 - iy0) as usize),
                            &mut rgb,
                            size as usize,
                            ((ix0 - x) as usize, (iy0 - y) as usize),
                        );
                    }
                }
                Patch { col, row, x, y, size, rgb }
            })
            .collect();
        Ok(patches)
    }
}

impl Iterator for PatchRows {
    type Item = Result<Vec<Patch>>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.failed || self.next_row >= self.grid.rows || self.grid.cols == 0 {
            return None;
        }
        let row = self.next_row;
        self.next_row += 1;
        let result = self.next_patch_row(row);
        self.failed = result.is_err();
        Some(result)
    }
}

impl Level {
    /// The patch grid over this level; see [`PatchGrid`].
    pub fn patch_grid(&self, options: PatchGridOptions) -> Result<PatchGrid> {
        PatchGrid::new(self, options)
    }
}
