//! Broken and foreign inputs give typed errors that name the file, frame and problem; never a
//! panic, never garbage pixels. The files are described in fixtures/bad/README.md.

mod common;

use common::fixtures;
use haidef_wsi_dicom::{OpenOptions, Slide, WsiError};
use std::path::PathBuf;

fn bad(name: &str) -> PathBuf {
    fixtures().join("bad").join(name)
}

/// Reads every frame of level 0; returns the first error.
fn read_all_frames(slide: &Slide) -> Result<(), WsiError> {
    let level = slide.level(0).unwrap();
    let (tx, ty) = level.tile_grid();
    for y in 0..ty {
        for x in 0..tx {
            level.read_tile(x, y)?;
        }
    }
    Ok(())
}

#[test]
fn ct_slice_is_not_a_wsi() {
    let err = Slide::open(bad("ct_small.dcm")).unwrap_err();
    assert!(matches!(err, WsiError::NotWsi { .. }), "{err:?}");
    let msg = err.to_string();
    assert!(msg.contains("ct_small.dcm") && msg.contains("1.2.840.10008.5.1.4.1.1.2"), "{msg}");
}

#[test]
fn folder_without_wsi_says_why() {
    let dir = tempdir("no-wsi");
    std::fs::copy(bad("ct_small.dcm"), dir.join("ct.dcm")).unwrap();
    std::fs::write(dir.join("notes.txt"), "not dicom").unwrap();
    let err = Slide::open(&dir).unwrap_err();
    let msg = err.to_string();
    assert!(matches!(err, WsiError::NoSlide { .. }), "{err:?}");
    assert!(msg.contains("ct.dcm") && msg.contains("notes.txt"), "{msg}");
}

#[test]
fn non_dicom_file_is_reported() {
    let dir = tempdir("not-dicom");
    let f = dir.join("x.dcm");
    std::fs::write(&f, vec![7u8; 300]).unwrap();
    let err = Slide::open(&f).unwrap_err();
    assert!(matches!(err, WsiError::NotDicom { .. }) && err.to_string().contains("x.dcm"), "{err:?}");
}

#[test]
fn truncated_file_opens_lazily_then_names_the_problem() {
    // Opening reads no pixel data, so a file cut inside its pixel data still opens...
    let slide = Slide::open(bad("truncated.dcm")).unwrap();
    // ...and reading frames fails with the file named and the truncation described.
    let err = read_all_frames(&slide).unwrap_err();
    let msg = err.to_string();
    assert!(msg.contains("truncated.dcm") && msg.contains("truncated"), "{msg}");
}

#[test]
fn corrupt_jpeg_frame_is_named() {
    let slide = Slide::open(bad("corrupt_jpeg.dcm")).unwrap();
    let level = slide.level(0).unwrap();
    // Frame 1 is fine, frame 2 (1-based) is garbled.
    assert!(level.decode_frame(0).is_ok());
    let err = level.decode_frame(1).unwrap_err();
    assert!(matches!(err, WsiError::Frame { frame: 2, .. }), "{err:?}");
    let msg = err.to_string();
    assert!(msg.contains("corrupt_jpeg.dcm") && msg.contains("frame 2") && msg.contains("JPEG"), "{msg}");
    // A region over the broken frame is an error, not a grey or black block.
    let (tw, _) = level.tile_size();
    assert!(level.read_region(i64::from(tw), 0, 16, 16).is_err());
}

#[test]
fn offset_table_past_the_end_is_an_error() {
    let slide = Slide::open(bad("bot_past_end.dcm")).unwrap();
    let err = read_all_frames(&slide).unwrap_err();
    let msg = err.to_string();
    assert!(matches!(err, WsiError::PixelData { .. }), "{err:?}");
    assert!(msg.contains("bot_past_end.dcm") && msg.contains("offset table"), "{msg}");
}

#[test]
fn tiled_full_frame_count_mismatch_is_an_error() {
    let err = Slide::open(bad("tiled_full_count_mismatch.dcm")).unwrap_err();
    assert!(matches!(err, WsiError::FrameCountMismatch { .. }), "{err:?}");
    let msg = err.to_string();
    assert!(msg.contains("tiled_full_count_mismatch.dcm") && msg.contains("NumberOfFrames"), "{msg}");
}

#[test]
fn unknown_series_and_level_are_clear() {
    let dir = common::slide_dir("ihc-full");
    let err = Slide::open_with(&dir, &OpenOptions { series_instance_uid: Some("1.2.3".into()), ..Default::default() }).unwrap_err();
    assert!(err.to_string().contains("series 1.2.3 not found"), "{err}");
    let slide = Slide::open(&dir).unwrap();
    let err = slide.level(99).unwrap_err().to_string();
    assert!(err.contains("level 99 does not exist"), "{err}");
}

fn tempdir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("haidef-wsi-test-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// Claims that would size tables beyond what the file holds are refused before anything is
/// allocated: a frame count the pixel data cannot hold, and (for metadata, which has no file
/// size to compare with) a tile grid beyond `MAX_TILES`.
#[test]
fn frame_counts_and_grids_beyond_the_data_are_refused_cheaply() {
    use dicom_core::{DataElement, PrimitiveValue, VR};
    use dicom_dictionary_std::tags;
    let src = fixtures().join("slides/ihc-full/level-3.dcm");
    // 2 frames of JPEG claimed as 100 million (a 10,000 x 10,000 grid of 256-pixel tiles).
    let mut obj = dicom_object::open_file(&src).unwrap();
    obj.put(DataElement::new(tags::NUMBER_OF_FRAMES, VR::IS, PrimitiveValue::from("100000000")));
    obj.put(DataElement::new(tags::TOTAL_PIXEL_MATRIX_COLUMNS, VR::UL, PrimitiveValue::from(2_560_000u32)));
    obj.put(DataElement::new(tags::TOTAL_PIXEL_MATRIX_ROWS, VR::UL, PrimitiveValue::from(2_560_000u32)));
    let dir = tempdir("huge-claims");
    let file = dir.join("level.dcm");
    obj.write_to_file(&file).unwrap();
    let start = std::time::Instant::now();
    let err = Slide::open(&file).unwrap_err().to_string();
    assert!(err.contains("NumberOfFrames is 100000000") && err.contains("hold at most"), "{err}");
    assert!(start.elapsed().as_secs_f64() < 2.0, "{:?}", start.elapsed());
    // The same claims as metadata (no file): the grid is refused.
    let info = haidef_wsi_dicom::ImageInfo::from_dataset(&obj, "1.2.840.10008.1.2.4.50", "metadata".into()).unwrap();
    let err = haidef_wsi_dicom::FrameIndex::build(&info).unwrap_err().to_string();
    assert!(err.contains("100000000 tiles") && err.contains("corrupt"), "{err}");
}

/// A frame is decoded whole, so its claimed size is checked before any buffer is sized by it:
/// Rows beyond its VR (the dicom_attributes fuzz finding: 6,235,915 written as IS made the
/// first read allocate 4.8 GB), and a frame of 65535 x 65535 US pixels (12.9 GB as RGB).
#[test]
fn frames_too_large_to_decode_are_refused_at_open() {
    use dicom_core::{DataElement, PrimitiveValue, VR};
    use dicom_dictionary_std::tags;
    let src = fixtures().join("slides/ihc-full/level-3.dcm");
    let dir = tempdir("huge-frames");
    for (name, edits, expected) in [
        ("rows-is", vec![(tags::ROWS, VR::IS, PrimitiveValue::from("6235915"))], "6235915 does not fit its VR (US, at most 65535)"),
        (
            "65535-square",
            vec![(tags::ROWS, VR::US, PrimitiveValue::from(65535u16)), (tags::COLUMNS, VR::US, PrimitiveValue::from(65535u16))],
            "a frame of 65535x65535 pixels is more than",
        ),
    ] {
        let mut obj = dicom_object::open_file(&src).unwrap();
        for (tag, vr, v) in edits {
            obj.put(DataElement::new(tag, vr, v));
        }
        let file = dir.join(format!("{name}.dcm"));
        obj.write_to_file(&file).unwrap();
        let err = Slide::open(&file).unwrap_err().to_string();
        assert!(err.contains(expected) && err.contains("Rows (0028,0010)") && err.contains(&format!("{name}.dcm")), "{name}: {err}");
    }
}
