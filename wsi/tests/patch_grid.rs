//! The streaming 224×224 patch grid: geometry, pixels equal to region reads (which are checked
//! against wsidicom elsewhere), and each frame decoded once per pass.

mod common;

use common::slide_dir;
use haidef_wsi_dicom::{FrameSource, Level, PatchGridOptions, Result, Slide};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

/// Wraps a frame source and counts reads per frame.
#[derive(Debug)]
struct Counting {
    inner: Arc<dyn FrameSource>,
    reads: Vec<AtomicUsize>,
}

impl FrameSource for Counting {
    fn frame_bytes(&self, index: u32) -> Result<Vec<u8>> {
        self.reads[index as usize].fetch_add(1, Ordering::Relaxed);
        self.inner.frame_bytes(index)
    }
    fn location(&self) -> &str {
        self.inner.location()
    }
}

/// Level 0 of a fixture slide, read through a [`Counting`] frame source.
fn counting_level0(slide: &str) -> (Level, Arc<Counting>) {
    let slide = Slide::open(slide_dir(slide)).unwrap();
    let level0 = slide.level(0).unwrap();
    let counting =
        Arc::new(Counting { inner: level0.frame_source().clone(), reads: (0..level0.info().number_of_frames).map(|_| AtomicUsize::new(0)).collect() });
    (Level::new(0, level0.info().clone(), counting.clone()).unwrap(), counting)
}

#[test]
fn grid_covers_the_level_in_row_major_order() {
    let slide = Slide::open(slide_dir("ihc-full")).unwrap();
    let level = slide.level(0).unwrap();
    let grid = level.patch_grid(PatchGridOptions::default()).unwrap();
    assert_eq!(grid.cols(), level.width() / 224);
    assert_eq!(grid.rows(), level.height() / 224);
    let patches: Vec<_> = grid.iter().collect::<Result<_>>().unwrap();
    assert_eq!(patches.len(), grid.len());
    for (i, p) in patches.iter().enumerate() {
        let (col, row) = (i as u32 % grid.cols(), i as u32 / grid.cols());
        assert_eq!((p.col, p.row, p.x, p.y), (col, row, col * 224, row * 224));
        assert_eq!(p.rgb.len(), 224 * 224 * 3);
    }
    // A sample of patches equals the region read of the same rectangle.
    for p in patches.iter().step_by(7) {
        let r = level.read_region(i64::from(p.x), i64::from(p.y), 224, 224).unwrap();
        assert!(r.data == p.rgb, "patch ({}, {}) differs from read_region", p.col, p.row);
    }
    assert_eq!(grid.positions().count(), grid.len());
}

#[test]
fn stride_and_size_are_configurable() {
    let slide = Slide::open(slide_dir("ihc-sparse")).unwrap();
    let level = slide.level(1).unwrap();
    let opts = PatchGridOptions { size: 100, stride: 300 };
    let grid = level.patch_grid(opts).unwrap();
    assert_eq!(grid.cols(), (level.width() - 100) / 300 + 1);
    for p in grid.iter() {
        let p = p.unwrap();
        let r = level.read_region(i64::from(p.x), i64::from(p.y), 100, 100).unwrap();
        assert!(r.data == p.rgb);
    }
    assert!(level.patch_grid(PatchGridOptions { size: 0, stride: 1 }).is_err());
    let tiny = slide.levels().last().unwrap().patch_grid(PatchGridOptions { size: 100_000, stride: 1 }).unwrap();
    assert!(tiny.is_empty() && tiny.iter().next().is_none());
}

#[test]
fn each_frame_is_decoded_once_per_pass() {
    let (level, counting) = counting_level0("ihc-sparse");
    let grid = level.patch_grid(PatchGridOptions::default()).unwrap();
    let n: usize = grid.rows_iter().map(|r| r.unwrap().len()).sum();
    assert_eq!(n, grid.len());
    // Frames under the grid are read exactly once; frames beyond it (the right/bottom strip
    // narrower than a patch) not at all.
    let (tw, th) = level.tile_size();
    let covered_x = grid.cols() * 224;
    let covered_y = grid.rows() * 224;
    let (tiles_x, tiles_y) = level.tile_grid();
    for ty in 0..tiles_y {
        for tx in 0..tiles_x {
            let frame = level.frame_at(tx, ty).unwrap();
            let expected = usize::from(tx * tw < covered_x && ty * th < covered_y);
            assert_eq!(counting.reads[frame as usize].load(Ordering::Relaxed), expected, "tile ({tx},{ty})");
        }
    }
}

#[test]
fn a_selection_reads_only_the_frames_it_needs() {
    let (level, counting) = counting_level0("ihc-full");
    let grid = level.patch_grid(PatchGridOptions::default()).unwrap();
    // Keep two patches: (0, 0) and (5, 3).
    let keep: Vec<bool> = (0..grid.len()).map(|i| i == 0 || i == (3 * grid.cols() + 5) as usize).collect();
    let rows: Vec<Vec<_>> = grid.rows_iter_selected(keep).unwrap().map(|r| r.unwrap()).collect();
    assert_eq!(rows.len(), grid.rows() as usize);
    let kept: Vec<_> = rows.into_iter().flatten().collect();
    assert_eq!(kept.iter().map(|p| (p.col, p.row)).collect::<Vec<_>>(), vec![(0, 0), (5, 3)]);
    for p in &kept {
        let r = level.read_region(i64::from(p.x), i64::from(p.y), 224, 224).unwrap();
        assert!(r.data == p.rgb);
    }
    // Patch (0,0) covers tile (0,0); patch (5,3) = x 1120..1344, y 672..896 covers tiles 4..5 × 2..3.
    let mut expected = vec![(0u32, 0u32)];
    for ty in 2..=3 {
        for tx in 4..=5 {
            expected.push((tx, ty));
        }
    }
    let (tiles_x, tiles_y) = level.tile_grid();
    for ty in 0..tiles_y {
        for tx in 0..tiles_x {
            let frame = level.frame_at(tx, ty).unwrap() as usize;
            // read_region above went through the cache after the grid: count grid reads only.
            let n = counting.reads[frame].load(Ordering::Relaxed);
            let want = usize::from(expected.contains(&(tx, ty)));
            assert!(n >= want && (want == 1 || n == 0), "tile ({tx},{ty}) read {n} times");
        }
    }
    assert!(grid.rows_iter_selected(vec![true; 3]).is_err());
}
