//! One image of a slide (a pyramid level or an associated image): geometry, spacing, frame
//! decoding and region reads across frame boundaries.

use crate::cache::{CacheKey, SlideCache, DEFAULT_CACHE_BYTES};
use crate::compose::compose;
use crate::decode::FrameDecoder;
use crate::error::{Result, WsiError};
use crate::frame_index::FrameIndex;
use crate::frame_source::FrameSource;
use crate::image_info::ImageInfo;
use crate::rgb::RgbImage;
use rayon::prelude::*;
use std::sync::Arc;

/// How [`Level::read_region_with`] treats a rectangle that is partly outside the level.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub enum OutOfBounds {
    /// Fail with [`WsiError::RegionOutOfBounds`] (the default).
    #[default]
    Error,
    /// Fill the part outside the level with white.
    PadWhite,
}

/// A decoded tile: RGB8, `tile_width x tile_height`, including the padding that edge tiles
/// carry beyond the image.
pub type Tile = Arc<Vec<u8>>;

/// One image of the pyramid (or an associated image).
#[derive(Debug, Clone)]
pub struct Level {
    pub(crate) index: usize,
    info: Arc<ImageInfo>,
    frames: Arc<dyn FrameSource>,
    frame_index: Arc<FrameIndex>,
    decoder: FrameDecoder,
    cache: Arc<SlideCache>,
    /// This image's id in the (possibly shared) cache.
    cache_id: u32,
}

impl Level {
    /// Assembles a level from its metadata and frame source. Checks the frame organisation and
    /// pixel format now, so that problems show at open time rather than mid-run.
    /// The level gets its own cache of [`DEFAULT_CACHE_BYTES`].
    pub fn new(index: usize, info: ImageInfo, frames: Arc<dyn FrameSource>) -> Result<Self> {
        Level::with_cache(index, info, frames, Arc::new(SlideCache::new(DEFAULT_CACHE_BYTES)))
    }

    /// Like [`Level::new`], keeping decoded tiles in `cache`, shared with the slide's other images.
    pub fn with_cache(index: usize, info: ImageInfo, frames: Arc<dyn FrameSource>, cache: Arc<SlideCache>) -> Result<Self> {
        let frame_index = FrameIndex::build(&info)?;
        let decoder = FrameDecoder::new(&info)?;
        let cache_id = cache.register();
        Ok(Level { index, info: Arc::new(info), frames, frame_index: Arc::new(frame_index), decoder, cache, cache_id })
    }

    /// The slide's cache, where region reads keep decoded tiles.
    pub fn cache(&self) -> &Arc<SlideCache> {
        &self.cache
    }

    fn cache_key(&self, frame: u32) -> CacheKey {
        CacheKey { image: self.cache_id, frame }
    }

    /// Position in the pyramid (0 = highest resolution), or in the associated image list.
    pub fn index(&self) -> usize {
        self.index
    }

    /// Metadata of the underlying instance.
    pub fn info(&self) -> &ImageInfo {
        &self.info
    }

    /// Width in pixels.
    pub fn width(&self) -> u32 {
        self.info.width
    }

    /// Height in pixels.
    pub fn height(&self) -> u32 {
        self.info.height
    }

    /// Frame (tile) size (width, height).
    pub fn tile_size(&self) -> (u32, u32) {
        (self.info.tile_width, self.info.tile_height)
    }

    /// Tiles across and down.
    pub fn tile_grid(&self) -> (u32, u32) {
        (self.frame_index.tiles_x(), self.frame_index.tiles_y())
    }

    /// Micrometres per pixel (mean of both axes), when the file gives a spacing.
    pub fn mpp(&self) -> Option<f64> {
        self.info.mpp()
    }

    /// Tile positions without a frame (read as white).
    pub fn missing_tiles(&self) -> usize {
        self.frame_index.missing_tiles()
    }

    /// The frame source (for prefetch hints and raw access).
    pub fn frame_source(&self) -> &Arc<dyn FrameSource> {
        &self.frames
    }

    /// Decodes frame `frame` (0-based) to RGB8.
    pub fn decode_frame(&self, frame: u32) -> Result<Vec<u8>> {
        let bytes = self.frames.frame_bytes(frame)?;
        self.decoder.decode(&bytes, self.frames.location(), frame)
    }

    /// Decodes frame `frame` (0-based) into `out`, which is resized to the frame's RGB8 size;
    /// lets callers reuse buffers.
    pub fn decode_frame_into(&self, frame: u32, out: &mut Vec<u8>) -> Result<()> {
        let bytes = self.frames.frame_bytes(frame)?;
        out.resize(self.decoder.frame_len(), 0);
        self.decoder.decode_into(&bytes, out, self.frames.location(), frame)
    }

    /// Decodes tile (tx, ty), through the slide's cache. `None` when the slide has no frame there
    /// (sparse tiling): callers treat it as white.
    pub fn read_tile(&self, tx: u32, ty: u32) -> Result<Option<Tile>> {
        let Some(frame) = self.frame_index.frame_at(tx, ty) else { return Ok(None) };
        self.cache.get_or_load(self.cache_key(frame), || self.decode_frame(frame).map(Arc::new)).map(Some)
    }

    /// Tiles (tx, ty) through the cache; the ones not cached are decoded in parallel.
    fn read_tiles(&self, tiles: &[(u32, u32)]) -> Result<Vec<Option<Tile>>> {
        let mut out: Vec<Option<Tile>> = vec![None; tiles.len()];
        let mut misses = Vec::new();
        for (slot, &(tx, ty)) in out.iter_mut().zip(tiles) {
            if let Some(frame) = self.frame_index.frame_at(tx, ty) {
                match self.cache.get(self.cache_key(frame)) {
                    Some(tile) => *slot = Some(tile),
                    None => misses.push((slot, tx, ty)),
                }
            }
        }
        // Only fan out when there is more than one frame to decode: waking the thread pool
        // costs more than copying cached tiles.
        if misses.len() > 1 {
            misses.into_par_iter().try_for_each(|(slot, tx, ty)| self.read_tile(tx, ty).map(|t| *slot = t))?;
        } else {
            for (slot, tx, ty) in misses {
                *slot = self.read_tile(tx, ty)?;
            }
        }
        Ok(out)
    }

    /// 0-based frame number of tile (tx, ty), if present.
    pub fn frame_at(&self, tx: u32, ty: u32) -> Option<u32> {
        self.frame_index.frame_at(tx, ty)
    }

    /// Reads the rectangle at (x, y) of size w×h as RGB8. It may cross any number of frame
    /// boundaries; it must lie inside the level (see [`Level::read_region_with`] to pad).
    pub fn read_region(&self, x: i64, y: i64, w: u32, h: u32) -> Result<RgbImage> {
        self.read_region_with(x, y, w, h, OutOfBounds::Error)
    }

    /// Like [`Level::read_region`], choosing what happens outside the level.
    pub fn read_region_with(&self, x: i64, y: i64, w: u32, h: u32, policy: OutOfBounds) -> Result<RgbImage> {
        let (lw, lh) = (i64::from(self.width()), i64::from(self.height()));
        let inside = x >= 0 && y >= 0 && x + i64::from(w) <= lw && y + i64::from(h) <= lh;
        if w == 0 || h == 0 || (!inside && policy == OutOfBounds::Error) {
            return Err(WsiError::RegionOutOfBounds { level: self.index, x, y, width: w, height: h, level_width: self.width(), level_height: self.height() });
        }
        // Tiles under the part of the request that lies inside the level.
        let (x0, y0) = (x.max(0), y.max(0));
        let (x1, y1) = ((x + i64::from(w)).min(lw), (y + i64::from(h)).min(lh));
        let (tw, th) = (i64::from(self.info.tile_width), i64::from(self.info.tile_height));
        let tiles: Vec<(u32, u32)> = if x0 < x1 && y0 < y1 {
            (y0 / th..=(y1 - 1) / th).flat_map(|ty| (x0 / tw..=(x1 - 1) / tw).map(move |tx| (tx as u32, ty as u32))).collect()
        } else {
            Vec::new()
        };
        let decoded = self.read_tiles(&tiles)?;
        let lookup = |tx: u32, ty: u32| tiles.iter().position(|t| *t == (tx, ty)).and_then(|i| decoded[i].as_deref().map(Vec::as_slice));
        let mut data = Vec::new();
        compose(&mut data, (x, y, w, h), (self.width(), self.height()), self.tile_size(), lookup);
        Ok(RgbImage { width: w, height: h, data })
    }

    /// Reads many rectangles (x, y, w, h) in parallel. Frames shared by several rectangles are
    /// decoded once (concurrent readers wait for one decode) while they stay in the slide's cache.
    /// Fails on the first rectangle that fails.
    pub fn read_regions(&self, rects: &[(i64, i64, u32, u32)], policy: OutOfBounds) -> Result<Vec<RgbImage>> {
        rects.par_iter().map(|&(x, y, w, h)| self.read_region_with(x, y, w, h, policy)).collect()
    }

    /// The whole level as one image (meant for small levels and associated images).
    pub fn read_all(&self) -> Result<RgbImage> {
        self.read_region(0, 0, self.width(), self.height())
    }
}
