//! What each fuzz target does with one input, for the reader crate (haidef-wsi-dicom): shared
//! by the cargo-fuzz targets (`fuzz/fuzz_targets/`) and by `wsi/tests/fuzz_regressions.rs`,
//! which replays every input kept under `fixtures/fuzz-regressions/` on stable Rust. Each
//! function must return (an `Err` inside is fine); a panic, a hang or a huge allocation is a
//! finding.
#![allow(dead_code)]

use haidef_wsi_dicom::{parse_body, parse_content_type, FrameDecoder, FrameIndex, ImageInfo, Slide};
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

/// Regions read from each level of an opened slide: the corner, small, so that a valid input
/// costs little whatever size it claims.
const REGION: u32 = 64;

/// A DICOM file as bytes: opened as a one-file slide (header, pixel data layout, frame table,
/// pyramid model), then a corner region of every level read (frame table and decoding).
pub fn dicom_file(data: &[u8]) {
    let path = scratch("dcm");
    if std::fs::write(&path, data).is_err() {
        return;
    }
    if let Ok(slide) = Slide::open(&path) {
        for level in slide.levels() {
            let (w, h) = (level.width().min(REGION), level.height().min(REGION));
            let _ = level.read_region(0, 0, w, h);
        }
    }
}

/// DICOM JSON metadata (what a DICOMweb server answers for a series): each instance read as
/// `open_series` reads it (tag keys checked, dicom-json), as an image's attributes, its frame
/// index built.
pub fn metadata_json(data: &[u8]) {
    let Ok(json) = serde_json::from_slice::<serde_json::Value>(data) else { return };
    // As `open_series` reads a server's answer: an array of instances, or here also one.
    let items = match json {
        serde_json::Value::Array(items) => items,
        one => vec![one],
    };
    for item in &items {
        metadata_item(item);
    }
}

fn metadata_item(item: &serde_json::Value) {
    let Ok(obj) = haidef_wsi_dicom::dataset_from_json(item) else { return };
    let location = "fuzz://metadata".to_string();
    if let Ok(info) = ImageInfo::from_dataset(&obj, "1.2.840.10008.1.2.4.50", location) {
        let _ = FrameIndex::build(&info);
        let _ = FrameDecoder::new(&info);
    }
}

/// A DICOMweb multipart answer: the first line is the Content-Type header, the rest the body.
pub fn multipart(data: &[u8]) {
    let split = data.iter().position(|b| *b == b'\n').unwrap_or(data.len());
    let Ok(header) = std::str::from_utf8(&data[..split]) else { return };
    if let Ok(t) = parse_content_type(header) {
        if let Ok(parts) = parse_body(&data[(split + 1).min(data.len())..], &t.boundary) {
            for p in &parts {
                let _ = (p.media_type(), p.transfer_syntax());
            }
        }
    }
}

/// One frame's stored bytes through each decoder (the first byte picks JPEG baseline, JPEG 2000
/// or uncompressed; the frame geometry is the fixture's of that kind).
pub fn frame(data: &[u8]) {
    let Some((&pick, bytes)) = data.split_first() else { return };
    let decoders = decoders();
    let decoder = &decoders[pick as usize % decoders.len()];
    let _ = decoder.decode(bytes, "fuzz", 0);
}

/// The decoders of fixture levels: JPEG baseline (256² frames), JPEG 2000, uncompressed RGB.
fn decoders() -> &'static [FrameDecoder] {
    static D: OnceLock<Vec<FrameDecoder>> = OnceLock::new();
    D.get_or_init(|| {
        let fixtures = fixtures();
        ["slides/ihc-full", "slides/ihc-j2k", "slides/ihc-raw"]
            .iter()
            .map(|s| {
                let slide = Slide::open(fixtures.join(s)).expect("fixture slide");
                FrameDecoder::new(slide.levels()[0].info()).expect("fixture decoder")
            })
            .collect()
    })
}

/// The repository's fixtures folder.
pub fn fixtures() -> PathBuf {
    // fuzz/ or wsi/ → the repository root.
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../fixtures")
}

/// A per-process file for inputs that must be files.
fn scratch(ext: &str) -> PathBuf {
    std::env::temp_dir().join(format!("haidef-fuzz-{}.{ext}", std::process::id()))
}

/// The separator between files in a `dicom_folder` input.
pub const NEXT_FILE: &[u8] = b"--haidef-next-file--";

/// Several DICOM files (split at [`NEXT_FILE`]) as one slide folder: grouping of instances into
/// a series, the pyramid model (levels, associated images), then a corner of each level read.
pub fn dicom_folder(data: &[u8]) {
    let dir = std::env::temp_dir().join(format!("haidef-fuzz-folder-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    if std::fs::create_dir_all(&dir).is_err() {
        return;
    }
    let mut rest = data;
    for i in 0..4 {
        let end = rest.windows(NEXT_FILE.len()).position(|w| w == NEXT_FILE).unwrap_or(rest.len());
        if std::fs::write(dir.join(format!("{i}.dcm")), &rest[..end]).is_err() {
            return;
        }
        if end == rest.len() {
            break;
        }
        rest = &rest[end + NEXT_FILE.len()..];
    }
    if let Ok(slide) = Slide::open(&dir) {
        for level in slide.levels() {
            let (w, h) = (level.width().min(REGION), level.height().min(REGION));
            let _ = level.read_region(0, 0, w, h);
        }
    }
}
