//! The bench's large-slide builder (`benches/support/tiled_slide.rs`) writes, with dicom-rs, a
//! pyramid that this crate's reader opens: right sizes and levels, and level 0's first frame is
//! the fixture's first frame, decoded identically.

#[path = "../benches/support/tiled_slide.rs"]
mod tiled_slide;

use haidef_wsi::wsi::Slide;
use std::path::PathBuf;

#[test]
fn a_tiled_slide_opens_with_the_right_pyramid_and_pixels() {
    let fixtures = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("fixtures");
    let dir = std::env::temp_dir().join(format!("haidef-tiled-test-{}", std::process::id()));
    let slide = Slide::open(tiled_slide::build(&fixtures, &dir, 20, 9)).unwrap();
    let sizes: Vec<(u32, u32)> = slide.levels().iter().map(|l| (l.width(), l.height())).collect();
    assert_eq!(sizes, vec![(5120, 2304), (2560, 1152), (1280, 576)]);
    assert!(slide.warnings().is_empty(), "{:?}", slide.warnings());
    let source = Slide::open(fixtures.join("slides/ihc-full")).unwrap();
    let (l0, s0) = (slide.level(0).unwrap(), source.level(0).unwrap());
    assert!((l0.mpp().unwrap() - s0.mpp().unwrap()).abs() < 1e-6, "{:?} vs {:?}", l0.mpp(), s0.mpp());
    assert!((slide.level(2).unwrap().mpp().unwrap() - 4.0 * s0.mpp().unwrap()).abs() < 1e-6);
    assert!(l0.read_region(0, 0, 256, 256).unwrap() == s0.read_region(0, 0, 256, 256).unwrap());
    // Every frame of level 0 decodes (the grid reads them all).
    let patches: usize = l0.patch_grid(Default::default()).unwrap().rows_iter().map(|r| r.unwrap().len()).sum();
    assert_eq!(patches, (5120 / 224) * (2304 / 224));
    if std::env::var_os("HAIDEF_KEEP_TILED").is_none() {
        std::fs::remove_dir_all(&dir).unwrap();
    } else {
        eprintln!("kept {}", dir.display());
    }
}
