//! Regions read by this crate against the same regions read by wsidicom (libjpeg-turbo through
//! Pillow), committed as PNG by fixtures/make_references.py; and TILED_FULL against per-frame
//! position copies of the same frames.

mod common;

use common::{assert_close, fixtures, load_png_rgb, slide_dir};
use haidef_wsi_dicom::{OutOfBounds, Slide};
use serde_json::Value;
use std::collections::HashMap;

fn references() -> Vec<Value> {
    let text = std::fs::read_to_string(fixtures().join("reference/regions.json")).unwrap();
    let v: Value = serde_json::from_str(&text).unwrap();
    v.as_array().unwrap().clone()
}

#[test]
fn regions_match_wsidicom() {
    let mut slides: HashMap<String, Slide> = HashMap::new();
    let refs = references();
    assert!(refs.len() >= 10, "expected the reference set, found {} regions", refs.len());
    let mut checked = 0;
    for r in &refs {
        let name = r["slide"].as_str().unwrap().to_string();
        // Check every reference against every copy of the slide that holds the same frames.
        let copies: Vec<String> = match name.as_str() {
            "ihc-full" | "ihc-sparse" => vec!["ihc-full".into(), "ihc-sparse".into()],
            "ihc-raw" | "ihc-raw-implicit" => vec!["ihc-raw".into(), "ihc-raw-implicit".into()],
            other => vec![other.into()],
        };
        let (level, x, y) = (r["level"].as_u64().unwrap() as usize, r["x"].as_i64().unwrap(), r["y"].as_i64().unwrap());
        let (w, h) = (r["width"].as_u64().unwrap() as u32, r["height"].as_u64().unwrap() as u32);
        let (rw, rh, reference) = load_png_rgb(&fixtures().join(r["png"].as_str().unwrap()));
        assert_eq!((rw, rh), (w, h), "reference PNG size for {r}");
        for copy in copies {
            let slide = slides.entry(copy.clone()).or_insert_with(|| Slide::open(slide_dir(&copy)).unwrap());
            let region = slide.level(level).unwrap().read_region(x, y, w, h).unwrap();
            assert_close(&format!("{copy} level {level} x={x} y={y} {w}x{h}"), &region.data, &reference);
            checked += 1;
        }
    }
    assert!(checked >= 20);
}

#[test]
fn tiled_full_and_per_frame_copies_are_byte_identical() {
    let full = Slide::open(slide_dir("ihc-full")).unwrap();
    let sparse = Slide::open(slide_dir("ihc-sparse")).unwrap();
    assert_eq!(full.levels().len(), sparse.levels().len());
    for (a, b) in full.levels().iter().zip(sparse.levels()) {
        assert_eq!((a.width(), a.height()), (b.width(), b.height()));
        assert_eq!(a.info().organization.name(), "TILED_FULL");
        assert!(b.info().organization.name().starts_with("TILED_SPARSE"));
        let ra = a.read_all().unwrap();
        let rb = b.read_all().unwrap();
        assert!(ra.data == rb.data, "level {} differs between TILED_FULL and per-frame copies", a.index());
    }
}

#[test]
fn padding_fills_outside_with_white_and_keeps_inside() {
    let slide = Slide::open(slide_dir("ihc-full")).unwrap();
    let level = slide.level(1).unwrap();
    let (w, h) = (level.width() as i64, level.height() as i64);
    let inside = level.read_region(w - 50, h - 40, 50, 40).unwrap();
    let padded = level.read_region_with(w - 50, h - 40, 100, 90, OutOfBounds::PadWhite).unwrap();
    for y in 0..90u32 {
        for x in 0..100u32 {
            let expected = if x < 50 && y < 40 { inside.pixel(x, y) } else { [255, 255, 255] };
            assert_eq!(padded.pixel(x, y), expected, "pixel ({x},{y})");
        }
    }
    let err = level.read_region(w - 50, h - 40, 100, 90).unwrap_err().to_string();
    assert!(err.contains("not inside level 1") && err.contains("padding"), "{err}");
    assert!(level.read_region(-1, 0, 10, 10).is_err());
}

#[test]
fn batch_region_reads_equal_single_reads() {
    let slide = Slide::open(slide_dir("ihc-sparse")).unwrap();
    let level = slide.level(0).unwrap();
    let rects: Vec<(i64, i64, u32, u32)> = (0..40).map(|i| ((i * 61 % 2200) as i64, (i * 37 % 1500) as i64, 224 + (i % 3) as u32, 200)).collect();
    let batch = level.read_regions(&rects, OutOfBounds::Error).unwrap();
    for (r, img) in rects.iter().zip(&batch) {
        level.cache().clear();
        assert!(level.read_region(r.0, r.1, r.2, r.3).unwrap() == *img, "{r:?}");
    }
    assert!(level.read_regions(&[(0, 0, 10, 10), (2499, 0, 10, 10)], OutOfBounds::Error).is_err());
}
