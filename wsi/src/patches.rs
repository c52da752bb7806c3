//! The non-overlapping (by default) square patch grid over a level, streamed row by row.
//!
//! Patches are produced in row-major order. Only the band of frame rows under the current patch
//! row is held decoded, so memory depends on the level's width, not its height, and each frame
//! is decoded once per pass. Frames of a band are decoded in parallel on rayon, and patches of a
//! row are cut in parallel.

use crate::compose::compose;
use crate::error::{Result, WsiError};
use crate::level::{Level, Tile};
use crate::pool::BufferPool;
use rayon::prelude::*;
use std::collections::VecDeque;
use std::sync::{Arc, Weak};

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
///
/// A patch from [`PatchGrid::rows_iter`] hands its pixel buffer back to the grid's pool when it
/// is dropped, so streaming a slide does not allocate a fresh buffer per patch. Take the pixels
/// out with [`Patch::into_rgb`] to keep them.
#[derive(Debug)]
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
    pool: Weak<BufferPool>,
}

impl Patch {
    /// A patch of grid place (`col`, `row`) at level pixel (`x`, `y`), made from pixels read
    /// another way (e.g. [`Level::read_region`]); `rgb` holds `size * size * 3` bytes.
    pub fn new(col: u32, row: u32, x: u32, y: u32, size: u32, rgb: Vec<u8>) -> Self {
        debug_assert_eq!(rgb.len(), size as usize * size as usize * 3, "a patch's pixels are size x size RGB8");
        Patch { col, row, x, y, size, rgb, pool: Weak::new() }
    }

    /// The pixels, taken out of the patch (they then stay with the caller).
    pub fn into_rgb(mut self) -> Vec<u8> {
        std::mem::take(&mut self.rgb)
    }
}

impl Drop for Patch {
    fn drop(&mut self) {
        if let Some(pool) = self.pool.upgrade() {
            pool.give(std::mem::take(&mut self.rgb));
        }
    }
}

/// The grid of patches that lie fully inside a level.
#[derive(Debug, Clone)]
pub struct PatchGrid {
    level: Level,
    options: PatchGridOptions,
    cols: u32,
    rows: u32,
    /// Decoded-frame buffers, reused across rows and passes.
    tile_pool: Arc<BufferPool>,
    /// Pixel buffers of dropped patches.
    patch_pool: Arc<BufferPool>,
}

impl PatchGrid {
    /// The grid of `options.size` patches every `options.stride` pixels over `level`, keeping
    /// only patches fully inside it.
    pub fn new(level: &Level, options: PatchGridOptions) -> Result<Self> {
        if options.size == 0 || options.stride == 0 {
            return Err(WsiError::InvalidArgument(format!("patch size ({}) and stride ({}) must be positive", options.size, options.stride)));
        }
        let fit = |len: u32| if len < options.size { 0 } else { (len - options.size) / options.stride + 1 };
        let (cols, rows) = (fit(level.width()), fit(level.height()));
        let across = level.tile_grid().0 as usize;
        // A band holds at most ceil(size / tile height) + 2 tile rows; two rows of patches are in
        // flight (the caller's and the one being cut).
        let band_rows = (options.size as usize).div_ceil(level.tile_size().1 as usize) + 2;
        Ok(PatchGrid {
            level: level.clone(),
            options,
            cols,
            rows,
            tile_pool: Arc::new(BufferPool::new(across * band_rows)),
            patch_pool: Arc::new(BufferPool::new(2 * cols as usize)),
        })
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
        PatchRows { grid: self.clone(), next_row: 0, band: VecDeque::new(), failed: false, keep: None }
    }

    /// Streams only the patches whose `keep[row * cols + col]` is true (e.g. those with
    /// tissue), row by row; frames under no kept patch are not read or decoded. Rows without
    /// kept patches yield empty vectors.
    pub fn rows_iter_selected(&self, keep: Vec<bool>) -> Result<PatchRows> {
        if keep.len() != self.len() {
            return Err(WsiError::InvalidArgument(format!("selection has {} entries, the grid has {} patches", keep.len(), self.len())));
        }
        Ok(PatchRows { grid: self.clone(), next_row: 0, band: VecDeque::new(), failed: false, keep: Some(keep) })
    }

    /// Streams the grid one patch at a time, in row-major order.
    pub fn iter(&self) -> impl Iterator<Item = Result<Patch>> {
        self.rows_iter().flat_map(|row| match row {
            Ok(patches) => patches.into_iter().map(Ok).collect::<Vec<_>>(),
            Err(e) => vec![Err(e)],
        })
    }
}

/// Tile rows beyond the band being decoded whose frames are hinted to the frame source.
const LOOK_AHEAD_TILE_ROWS: u32 = 8;

/// Iterator over patch rows; see [`PatchGrid::rows_iter`]. Stops after the first error.
#[derive(Debug)]
pub struct PatchRows {
    grid: PatchGrid,
    next_row: u32,
    /// Decoded frame rows currently held: (tile row, tiles of that row).
    band: VecDeque<(u32, Vec<Option<Tile>>)>,
    failed: bool,
    /// Patches to produce (all when `None`), row-major.
    keep: Option<Vec<bool>>,
}

impl PatchRows {
    /// Tile columns any patch touches.
    fn tiles_across(&self) -> u32 {
        let g = &self.grid;
        let (tw, _) = g.level.tile_size();
        ((g.cols - 1) * g.options.stride + g.options.size - 1) / tw + 1
    }

    /// First and last tile row under patch row `row`.
    fn tile_rows_of(&self, row: u32) -> (u32, u32) {
        let (_, th) = self.grid.level.tile_size();
        let y0 = row * self.grid.options.stride;
        (y0 / th, (y0 + self.grid.options.size - 1) / th)
    }

    /// Tile rows needed by patch row `row` that the band does not hold yet.
    fn missing_tile_rows(&self, row: u32) -> std::ops::RangeInclusive<u32> {
        let (ty_a, ty_b) = self.tile_rows_of(row);
        let have = self.band.back().map(|(ty, _)| ty + 1).unwrap_or(ty_a).max(ty_a);
        have..=ty_b
    }

    fn kept(&self, col: u32, row: u32) -> bool {
        self.keep.as_ref().is_none_or(|k| k[(row * self.grid.cols + col) as usize])
    }

    /// Whether tile (tx, ty) lies under a kept patch.
    fn tile_wanted(&self, tx: u32, ty: u32) -> bool {
        if self.keep.is_none() {
            return true;
        }
        let (tw, th) = self.grid.level.tile_size();
        let (size, stride) = (self.grid.options.size, self.grid.options.stride);
        // Patch rows and columns whose pixels overlap the tile.
        let first = |t: u32, tile: u32| (t * tile).saturating_sub(size - 1).div_ceil(stride);
        let last = |t: u32, tile: u32, n: u32| (((t + 1) * tile - 1) / stride).min(n - 1);
        let (r0, r1) = (first(ty, th), last(ty, th, self.grid.rows));
        let (c0, c1) = (first(tx, tw), last(tx, tw, self.grid.cols));
        (r0..=r1).any(|r| (c0..=c1).any(|c| self.kept(c, r)))
    }

    /// Decodes tile rows `rows` (all tiles any wanted patch touches), in parallel.
    fn decode_tile_rows(&self, rows: std::ops::RangeInclusive<u32>) -> Result<Vec<(u32, Vec<Option<Tile>>)>> {
        let level = &self.grid.level;
        let across = self.tiles_across();
        let wanted: Vec<(u32, u32)> = rows.clone().flat_map(|ty| (0..across).map(move |tx| (tx, ty))).collect();
        let wanted_mask: Vec<bool> = wanted.iter().map(|&(tx, ty)| self.tile_wanted(tx, ty)).collect();
        if wanted.is_empty() {
            return Ok(Vec::new());
        }
        let mut frames: Vec<u32> = wanted.iter().zip(&wanted_mask).filter(|(_, w)| **w).filter_map(|(&(tx, ty), _)| level.frame_at(tx, ty)).collect();
        // Then the frames of the next tile rows: a network source fetches as many of them with
        // this band as its requests hold (fewer round trips); a local file ignores the hint.
        let (_, tiles_down) = level.tile_grid();
        let ahead = (rows.end() + 1)..(rows.end() + 1 + LOOK_AHEAD_TILE_ROWS).min(tiles_down);
        frames.extend(
            ahead.flat_map(|ty| (0..across).map(move |tx| (tx, ty))).filter(|&(tx, ty)| self.tile_wanted(tx, ty)).filter_map(|(tx, ty)| level.frame_at(tx, ty)),
        );
        level.frame_source().prefetch(&frames);
        let decoded: Vec<Option<Tile>> = wanted
            .par_iter()
            .zip(wanted_mask.par_iter())
            .map(|(&(tx, ty), &want)| {
                if !want {
                    return Ok(None);
                }
                let Some(frame) = level.frame_at(tx, ty) else { return Ok(None) };
                let mut buf = self.grid.tile_pool.take();
                level.decode_frame_into(frame, &mut buf)?;
                Ok(Some(Arc::new(buf)))
            })
            .collect::<Result<_>>()?;
        let mut decoded = decoded.into_iter();
        Ok(rows.map(|ty| (ty, decoded.by_ref().take(across as usize).collect())).collect())
    }

    /// Cuts the patches of `row` from the band, in parallel.
    fn cut_row(&self, row: u32) -> Vec<Patch> {
        let level = &self.grid.level;
        let (ty_a, ty_b) = self.tile_rows_of(row);
        let band: Vec<&(u32, Vec<Option<Tile>>)> = self.band.iter().filter(|(ty, _)| (ty_a..=ty_b).contains(ty)).collect();
        let size = self.grid.options.size;
        let image_size = (level.width(), level.height());
        let tile = |tx: u32, ty: u32| band.iter().find(|(t, _)| *t == ty).and_then(|(_, tiles)| tiles[tx as usize].as_deref().map(Vec::as_slice));
        let cols: Vec<u32> = (0..self.grid.cols).filter(|&c| self.kept(c, row)).collect();
        cols.into_par_iter()
            .map(|col| {
                let (x, y) = self.grid.origin(col, row);
                let mut rgb = self.grid.patch_pool.take();
                rgb.clear();
                compose(&mut rgb, (i64::from(x), i64::from(y), size, size), image_size, level.tile_size(), tile);
                Patch { col, row, x, y, size, rgb, pool: Arc::downgrade(&self.grid.patch_pool) }
            })
            .collect()
    }

    /// Produces patch row `row`, decoding the tiles of the next row while cutting this one.
    fn next_patch_row(&mut self, row: u32) -> Result<Vec<Patch>> {
        let (ty_a, _) = self.tile_rows_of(row);
        while self.band.front().is_some_and(|(ty, _)| *ty < ty_a) {
            let (_, tiles) = self.band.pop_front().expect("checked");
            // Decoded buffers go back to the pool unless a caller still holds them.
            for tile in tiles.into_iter().flatten().filter_map(|t| Arc::try_unwrap(t).ok()) {
                self.grid.tile_pool.give(tile);
            }
        }
        let missing = self.missing_tile_rows(row);
        let decoded = self.decode_tile_rows(missing)?;
        self.band.extend(decoded);
        let next = if row + 1 < self.grid.rows { Some(self.missing_tile_rows(row + 1)) } else { None };
        let (patches, ahead) = rayon::join(|| self.cut_row(row), || next.map(|rows| self.decode_tile_rows(rows)).transpose());
        self.band.extend(ahead?.unwrap_or_default());
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
