//! Where each tile of a level is stored: the map from tile (column, row) to frame number, for
//! TILED_FULL images (row-major, computed) and for per-frame positions (any order, holes allowed).

use crate::error::{Result, WsiError};
use crate::image_info::{ImageInfo, Organization};

const MISSING: u32 = u32::MAX;

/// The most tiles a level may have: 2^26 (a 2-million-pixel-square image in 256-pixel tiles;
/// the index then takes 256 MB). A header claiming more is refused before anything is
/// allocated: the claim costs a hostile file or server a few bytes.
pub(crate) const MAX_TILES: u64 = 1 << 26;

/// Map from tile grid position to 0-based frame number.
#[derive(Debug, Clone)]
pub struct FrameIndex {
    tiles_x: u32,
    tiles_y: u32,
    frames: Vec<u32>,
    missing: usize,
}

impl FrameIndex {
    /// Builds the index of an instance from its organisation. Checks the TILED_FULL frame count
    /// against the grid and each per-frame position against the tile grid.
    pub fn build(info: &ImageInfo) -> Result<Self> {
        let (tiles_x, tiles_y) = info.tile_grid();
        let tiles = u64::from(tiles_x) * u64::from(tiles_y);
        let location = || info.location.clone();
        if tiles > MAX_TILES {
            return Err(WsiError::frame(
                location(),
                0,
                format!(
                    "{}x{} pixels in {}x{} tiles is {tiles} tiles, more than the {MAX_TILES} this reader indexes: the header is corrupt",
                    info.width, info.height, info.tile_width, info.tile_height
                ),
            ));
        }
        match &info.organization {
            Organization::TiledFull => {
                // Frames beyond the first focal plane and optical path follow the first ones.
                let expected = tiles * u64::from(info.focal_planes) * u64::from(info.optical_paths);
                if u64::from(info.number_of_frames) != expected {
                    return Err(WsiError::FrameCountMismatch {
                        location: location(),
                        found: info.number_of_frames,
                        expected: u32::try_from(expected).unwrap_or(u32::MAX),
                        tiles_x,
                        tiles_y,
                        width: info.width,
                        height: info.height,
                        tile_width: info.tile_width,
                        tile_height: info.tile_height,
                    });
                }
                Ok(FrameIndex { tiles_x, tiles_y, frames: (0..tiles as u32).collect(), missing: 0 })
            }
            Organization::PerFramePositions(positions) => {
                let mut frames = vec![MISSING; tiles as usize];
                for (i, &(col, row)) in positions.iter().enumerate() {
                    let (x, y) = (col - 1, row - 1);
                    let (tw, th) = (i64::from(info.tile_width), i64::from(info.tile_height));
                    if x < 0 || y < 0 || x % tw != 0 || y % th != 0 {
                        return Err(WsiError::frame(
                            location(),
                            i as u32,
                            format!(
                                "PlanePositionSlide column {col}, row {row} is not on the {tw}x{th} tile \
                                 grid (expected 1 + a multiple of the tile size)"
                            ),
                        ));
                    }
                    let (tx, ty) = (x / tw, y / th);
                    if tx >= i64::from(tiles_x) || ty >= i64::from(tiles_y) {
                        return Err(WsiError::frame(
                            location(),
                            i as u32,
                            format!("PlanePositionSlide column {col}, row {row} lies outside the {}x{} image", info.width, info.height),
                        ));
                    }
                    let slot = &mut frames[(ty * i64::from(tiles_x) + tx) as usize];
                    // Several focal planes or optical paths share a position: keep the first.
                    if *slot == MISSING {
                        *slot = i as u32;
                    }
                }
                let missing = frames.iter().filter(|f| **f == MISSING).count();
                Ok(FrameIndex { tiles_x, tiles_y, frames, missing })
            }
        }
    }

    /// Tiles across.
    pub fn tiles_x(&self) -> u32 {
        self.tiles_x
    }

    /// Tiles down.
    pub fn tiles_y(&self) -> u32 {
        self.tiles_y
    }

    /// Number of grid positions with no frame (read as white).
    pub fn missing_tiles(&self) -> usize {
        self.missing
    }

    /// 0-based frame holding tile (tx, ty), or `None` when the tile is absent or off the grid.
    pub fn frame_at(&self, tx: u32, ty: u32) -> Option<u32> {
        if tx >= self.tiles_x || ty >= self.tiles_y {
            return None;
        }
        let f = self.frames[(ty as usize) * (self.tiles_x as usize) + tx as usize];
        (f != MISSING).then_some(f)
    }
}
