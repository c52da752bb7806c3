//! The multipart parser on a real WADO-RS answer captured from Orthanc 1.10 + DICOMweb 1.7
//! (fixtures/dicomweb/capture.sh): frames 1–3 of slides/ihc-full/level-2.dcm, which must come
//! out byte-identical to the frames our local reader finds in the same file.

mod common;

use common::{fixtures, slide_dir};
use haidef_wsi_dicom::{parse_body, parse_content_type, Slide};

#[test]
fn orthanc_frames_answer_parses_to_the_files_frames() {
    let dir = fixtures().join("dicomweb");
    let content_type = std::fs::read_to_string(dir.join("orthanc-1.10-frames-1-3.content-type")).unwrap();
    let body = std::fs::read(dir.join("orthanc-1.10-frames-1-3.multipart")).unwrap();
    let t = parse_content_type(&content_type).unwrap();
    assert_eq!(t.transfer_syntax.as_deref(), Some("1.2.840.10008.1.2.4.50"));
    assert_eq!(t.part_type.as_deref(), Some("image/jpeg"));
    let parts = parse_body(&body, &t.boundary).unwrap();
    assert_eq!(parts.len(), 3);
    let slide = Slide::open(slide_dir("ihc-full").join("level-2.dcm")).unwrap();
    let frames = slide.level(0).unwrap().frame_source().clone();
    for (i, part) in parts.iter().enumerate() {
        assert!(part.header("content-location").unwrap().ends_with(&format!("/frames/{}", i + 1)), "{:?}", part.headers);
        let local = frames.frame_bytes(i as u32).unwrap();
        // DICOM pads odd fragments with one byte; a server may or may not send it.
        let trimmed = if local.len().is_multiple_of(2) && local.last() == Some(&0) && part.body.len() + 1 == local.len() {
            &local[..local.len() - 1]
        } else {
            &local[..]
        };
        assert_eq!(part.body, trimmed, "frame {}", i + 1);
    }
    // The same answer cut short is an error, not two frames.
    assert!(parse_body(&body[..body.len() - 100], &t.boundary).is_err());
}
