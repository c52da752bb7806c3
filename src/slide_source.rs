//! The slide source: the patches of one pyramid level whose tissue fraction passes the filter,
//! row by row from the streaming patch grid (frames decoded in parallel, only the band under
//! the current patch row held), each patch passed through a pixel transform when given (the
//! slide's ICC profile → sRGB).

use crate::engine::{Input, Source};
use crate::error::{PipelineError, Result};
use crate::sink::PatchRecord;
use haidef_wsi_dicom::{Patch, PatchGrid};
use haidef_wsi_encoders::ImageRef;
use rayon::prelude::*;
use std::sync::atomic::{AtomicBool, Ordering};

impl Input for Patch {
    fn image(&self) -> ImageRef<'_> {
        ImageRef::rgb(self.size as usize, self.size as usize, &self.rgb)
    }
}

/// A transform of RGB8 pixels in place, applied to every patch before it is embedded (e.g.
/// `|rgb| to_srgb.apply(rgb)` with [`crate::color::ToSrgb`]).
pub type PixelTransform<'a> = &'a (dyn Fn(&mut [u8]) + Sync);

/// The kept patches of a patch grid.
pub struct SlidePatches<'a> {
    grid: &'a PatchGrid,
    keep: Vec<bool>,
    fractions: &'a [f32],
    transform: Option<PixelTransform<'a>>,
    kept: usize,
}

impl<'a> SlidePatches<'a> {
    /// The patches of `grid` where `keep` (one flag per grid position, row-major) is set, each
    /// keyed with its tissue fraction from `fractions`, its pixels passed through `transform`.
    pub fn new(grid: &'a PatchGrid, keep: Vec<bool>, fractions: &'a [f32], transform: Option<PixelTransform<'a>>) -> Self {
        let kept = keep.iter().filter(|k| **k).count();
        SlidePatches { grid, keep, fractions, transform, kept }
    }
}

impl Source for SlidePatches<'_> {
    type Key = PatchRecord;
    type Input = Patch;

    fn len(&self) -> usize {
        self.kept
    }

    fn run(&mut self, emit: &mut dyn FnMut(PatchRecord, Patch) -> bool, cancel: &AtomicBool) -> Result<()> {
        let cols = self.grid.cols();
        for row in self.grid.rows_iter_selected(self.keep.clone())? {
            if cancel.load(Ordering::Relaxed) {
                return Err(PipelineError::Cancelled);
            }
            let mut row = row?;
            if let Some(transform) = self.transform {
                row.par_iter_mut().for_each(|p| transform(&mut p.rgb));
            }
            for p in row {
                let fraction = self.fractions[(p.row * cols + p.col) as usize];
                let key = PatchRecord { x: p.x, y: p.y, width: p.size, height: p.size, tissue_fraction: fraction };
                if !emit(key, p) {
                    return Ok(());
                }
            }
        }
        Ok(())
    }
}
