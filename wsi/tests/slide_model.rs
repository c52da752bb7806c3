//! The slide model (levels, sizes, frames, transfer syntax, organisation, associated images,
//! spacing) against fixtures/slides/summary.json, which pydicom wrote from the same files
//! (fixtures/describe_fixtures.py).

mod common;

use common::{fixtures, slide_dir};
use haidef_wsi_dicom::{AssociatedKind, Level, Organization, OutOfBounds, Slide};
use serde_json::Value;

fn summary() -> Value {
    serde_json::from_str(&std::fs::read_to_string(fixtures().join("slides/summary.json")).unwrap()).unwrap()
}

#[test]
fn levels_match_pydicom_description() {
    let summary = summary();
    let slides = summary.as_object().unwrap();
    assert!(slides.len() >= 5);
    for (name, files) in slides {
        let slide = Slide::open(slide_dir(name)).unwrap();
        let mut volumes: Vec<&Value> = files.as_array().unwrap().iter().filter(|f| f["image_type"].as_str().unwrap().contains("VOLUME")).collect();
        volumes.sort_by_key(|f| std::cmp::Reverse(f["total_pixel_matrix"][0].as_u64().unwrap()));
        assert_eq!(slide.levels().len(), volumes.len(), "{name}");
        for (level, f) in slide.levels().iter().zip(volumes) {
            let what = format!("{name} level {}", level.index());
            let info = level.info();
            assert!(info.location.ends_with(f["file"].as_str().unwrap()), "{what}: {}", info.location);
            assert_eq!(
                [u64::from(level.width()), u64::from(level.height())],
                [f["total_pixel_matrix"][0].as_u64().unwrap(), f["total_pixel_matrix"][1].as_u64().unwrap()],
                "{what}"
            );
            assert_eq!(
                [u64::from(info.tile_width), u64::from(info.tile_height)],
                [f["frame_size"][0].as_u64().unwrap(), f["frame_size"][1].as_u64().unwrap()],
                "{what}"
            );
            assert_eq!(u64::from(info.number_of_frames), f["number_of_frames"].as_u64().unwrap(), "{what}");
            assert_eq!(info.transfer_syntax, f["transfer_syntax"].as_str().unwrap(), "{what}");
            assert_eq!(info.photometric, f["photometric_interpretation"].as_str().unwrap(), "{what}");
            let per_frame = f["per_frame_positions"].as_bool().unwrap();
            assert_eq!(matches!(info.organization, Organization::PerFramePositions(_)), per_frame, "{what}");
            // The true spacing (from the imaged size given to the dicomizer), not the swapped
            // PixelSpacing the dicomizer writes.
            let truth = &f["true_spacing_um"];
            let mpp = (truth[0].as_f64().unwrap() + truth[1].as_f64().unwrap()) / 2.0;
            assert!((level.mpp().unwrap() - mpp).abs() < 1e-3, "{what}: mpp {:?} vs {mpp}", level.mpp());
            assert_eq!(level.missing_tiles(), 0, "{what}");
        }
    }
}

#[test]
fn inconsistent_pixel_spacing_is_reported() {
    let slide = Slide::open(slide_dir("ihc-sparse")).unwrap();
    assert!(slide.warnings().iter().any(|w| w.contains("PixelSpacing") && w.contains("level-0.dcm")), "{:?}", slide.warnings());
}

#[test]
fn level_for_mpp_picks_the_nearest_on_a_log_scale() {
    let slide = Slide::open(slide_dir("ihc-full")).unwrap();
    let pick = |mpp: f64| slide.level_for_mpp(mpp).unwrap().index();
    assert_eq!(pick(0.5), 0);
    assert_eq!(pick(0.25), 0);
    assert_eq!(pick(1.0), 1);
    assert_eq!(pick(1.3), 1);
    assert_eq!(pick(1.5), 2); // 1.5/1.0 = 1.5 > 2.0/1.5 = 1.33
    assert_eq!(pick(100.0), 3);
    assert!(slide.level_for_mpp(0.0).is_err() && slide.level_for_mpp(f64::NAN).is_err());
}

#[test]
fn label_is_exposed_separately() {
    for name in ["ihc-sparse", "ihc-full"] {
        let slide = Slide::open(slide_dir(name)).unwrap();
        assert_eq!(slide.associated().len(), 1, "{name}");
        let label = slide.associated_image(AssociatedKind::Label).unwrap();
        assert_eq!((label.image.width(), label.image.height()), (300, 150));
        let img = label.image.read_all().unwrap();
        assert_eq!(img.data.len(), 300 * 150 * 3);
        assert!(slide.associated_image(AssociatedKind::Overview).is_none());
        // The label is not a level.
        assert!(slide.levels().iter().all(|l| l.width() != 300));
    }
}

#[test]
fn a_single_file_opens_as_a_one_level_slide() {
    let slide = Slide::open(slide_dir("ihc-full").join("level-2.dcm")).unwrap();
    assert_eq!(slide.levels().len(), 1);
    assert_eq!(slide.level(0).unwrap().width(), 625);
}

#[test]
fn absent_tiles_read_as_white() {
    // Per-frame positions with the last frame's position withheld: that tile becomes absent
    // (TILED_SPARSE), every other tile reads as before.
    let slide = Slide::open(slide_dir("ihc-sparse")).unwrap();
    let level = slide.level(1).unwrap();
    let mut info = level.info().clone();
    let Organization::PerFramePositions(positions) = &mut info.organization else { panic!("per-frame fixture") };
    let (col, row) = positions.pop().unwrap();
    let sparse = Level::new(1, info, level.frame_source().clone()).unwrap();
    assert_eq!(sparse.missing_tiles(), 1);
    let (tw, th) = sparse.tile_size();
    let (tx, ty) = ((col as u32 - 1) / tw, (row as u32 - 1) / th);
    assert!(sparse.read_tile(tx, ty).unwrap().is_none());
    let full = level.read_all().unwrap();
    let holed = sparse.read_region_with(0, 0, level.width(), level.height(), OutOfBounds::Error).unwrap();
    for y in 0..level.height() {
        for x in 0..level.width() {
            let in_hole = x / tw == tx && y / th == ty;
            let expected = if in_hole { [255, 255, 255] } else { full.pixel(x, y) };
            assert_eq!(holed.pixel(x, y), expected, "({x},{y})");
        }
    }
}
