//! The slide source: the patches of one pyramid level whose tissue fraction passes the filter,
//! row by row from the streaming patch grid (frames decoded in parallel, only the band under
//! the current patch row held), each patch passed through a pixel transform when given (the
//! slide's ICC profile → sRGB).
//!
//! A frame whose data is broken (it does not decode, or the file ends inside it) stops the run
//! with an error naming its file and frame, unless skipping was asked for: then the patches
//! over that frame are left out and listed ([`SlidePatches::unreadable`]), and every other
//! patch is embedded. Other read errors (a failing disk, a server that stops answering) still
//! stop the run.

use crate::engine::{Input, Source};
use crate::error::{PipelineError, Result};
use crate::files::Skipped;
use haidef_wsi_dicom::{Level, Patch, PatchGrid, WsiError};
use haidef_wsi_encoders::ImageRef;
use rayon::prelude::*;
use std::sync::atomic::{AtomicBool, Ordering};

impl Input for Patch {
    fn image(&self) -> ImageRef<'_> {
        ImageRef::rgb(self.size as usize, self.size as usize, &self.rgb)
    }
}

/// A transform of RGB8 pixels in place, applied to every patch before it is embedded (the
/// slide's ICC profile → sRGB).
pub(crate) type PixelTransform = Box<dyn Fn(&mut [u8]) + Send + Sync>;

/// Where one patch lies: a slide row's own key columns.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct PatchRecord {
    /// Left edge in level pixels.
    pub x: u32,
    /// Top edge in level pixels.
    pub y: u32,
    /// Width in level pixels.
    pub width: u32,
    /// Height in level pixels.
    pub height: u32,
    /// Tissue fraction of the patch (1.0 when tissue detection is off).
    pub tissue_fraction: f32,
}

/// Whether `e` says a frame's data is broken: it does not decode, or the file ends inside it.
/// Other read errors (a failing disk, a lost network mount, a server) may pass, and are not
/// skipped.
fn is_broken_frame(e: &WsiError) -> bool {
    match e {
        WsiError::Frame { source: None, .. } => true,
        WsiError::Frame { source: Some(io), .. } => io.kind() == std::io::ErrorKind::UnexpectedEof,
        _ => false,
    }
}

/// A patch left out because a frame under it cannot be read.
#[derive(Debug, Clone, PartialEq)]
pub struct UnreadablePatch {
    /// Left edge in level pixels.
    pub x: u32,
    /// Top edge in level pixels.
    pub y: u32,
    /// The error, naming the file and frame.
    pub error: String,
}

/// The kept patches of a patch grid.
pub struct SlidePatches<'a> {
    grid: PatchGrid,
    level: Option<&'a Level>,
    keep: Vec<bool>,
    fractions: Vec<f32>,
    transform: Option<PixelTransform>,
    kept: usize,
    unreadable: Vec<UnreadablePatch>,
}

impl<'a> SlidePatches<'a> {
    /// The patches of `grid` where `keep` (one flag per grid position, row-major) is set, each
    /// keyed with its tissue fraction from `fractions`, its pixels passed through `transform`.
    pub(crate) fn new(grid: PatchGrid, keep: Vec<bool>, fractions: Vec<f32>, transform: Option<PixelTransform>) -> Self {
        let kept = keep.iter().filter(|k| **k).count();
        SlidePatches { grid, level: None, keep, fractions, transform, kept, unreadable: Vec::new() }
    }

    /// Leaves out the patches over broken frames instead of failing;
    /// `level` is the grid's level, read patch by patch in the rows where a frame fails.
    pub(crate) fn skip_unreadable(mut self, level: &'a Level) -> Self {
        self.level = Some(level);
        self
    }

    /// The patches left out so far, in grid order.
    pub(crate) fn unreadable(&self) -> &[UnreadablePatch] {
        &self.unreadable
    }

    /// Transforms and emits a row of patches; false once downstream has stopped.
    fn emit_row(&self, mut row: Vec<Patch>, emit: &mut dyn FnMut(PatchRecord, Patch) -> bool) -> bool {
        let cols = self.grid.cols();
        if let Some(transform) = &self.transform {
            row.par_iter_mut().for_each(|p| transform(&mut p.rgb));
        }
        for p in row {
            let fraction = self.fractions[(p.row * cols + p.col) as usize];
            let key = PatchRecord { x: p.x, y: p.y, width: p.size, height: p.size, tissue_fraction: fraction };
            if !emit(key, p) {
                return false;
            }
        }
        true
    }

    /// Patch row `row` read patch by patch, those over an unreadable frame left out and listed.
    fn row_by_patch(&mut self, level: &Level, row: u32) -> Result<Vec<Patch>> {
        let size = self.grid.options().size;
        let cols: Vec<u32> = (0..self.grid.cols()).filter(|&c| self.keep[(row * self.grid.cols() + c) as usize]).collect();
        let read: Vec<(u32, std::result::Result<Vec<u8>, WsiError>)> = cols
            .into_par_iter()
            .map(|col| {
                let (x, y) = self.grid.origin(col, row);
                (col, level.read_region(i64::from(x), i64::from(y), size, size).map(|img| img.data))
            })
            .collect();
        let mut patches = Vec::new();
        for (col, pixels) in read {
            let (x, y) = self.grid.origin(col, row);
            match pixels {
                Ok(rgb) => patches.push(Patch::new(col, row, x, y, size, rgb)),
                Err(e) if is_broken_frame(&e) => self.unreadable.push(UnreadablePatch { x, y, error: e.to_string() }),
                Err(e) => return Err(e.into()),
            }
        }
        Ok(patches)
    }
}

impl Source for SlidePatches<'_> {
    type Key = PatchRecord;
    type Input = Patch;

    fn len(&self) -> usize {
        self.kept
    }

    fn run(&mut self, emit: &mut dyn FnMut(PatchRecord, Patch) -> bool, _skip: &mut dyn FnMut(Skipped), cancel: &AtomicBool) -> Result<()> {
        let cols = self.grid.cols() as usize;
        // Patch rows from `start` on are still to be read. The streaming grid stops at its first
        // error; when skipping, the failed row is read patch by patch and the grid restarted
        // after it (rows before `start` deselected: they yield nothing and decode nothing, but
        // decoding ahead for row `start` may fail there, and counts as row `start` failing).
        let mut start = 0;
        loop {
            let mut keep = self.keep.clone();
            keep[..start as usize * cols].fill(false);
            let mut failed = None;
            for (r, row) in self.grid.rows_iter_selected(keep)?.enumerate() {
                let r = r as u32;
                if cancel.load(Ordering::Relaxed) {
                    return Err(PipelineError::Cancelled);
                }
                let row = match (row, self.level) {
                    (Ok(row), _) => row,
                    (Err(e), Some(_)) if is_broken_frame(&e) => {
                        failed = Some(r.max(start));
                        break;
                    }
                    (Err(e), None) if is_broken_frame(&e) => return Err(PipelineError::UnreadableFrame(e)),
                    (Err(e), _) => return Err(e.into()),
                };
                if !self.emit_row(row, emit) {
                    return Ok(());
                }
            }
            let (Some(r), Some(level)) = (failed, self.level) else { return Ok(()) };
            let row = self.row_by_patch(level, r)?;
            if !self.emit_row(row, emit) {
                return Ok(());
            }
            start = r + 1;
        }
    }
}
