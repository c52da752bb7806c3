//! The frame table of encapsulated pixel data, built every way the standard allows: Basic
//! Offset Table, empty BOT (scan fragment headers), several fragments per frame (with and
//! without BOT), Extended Offset Table. pydicom re-encapsulated the same JPEG frames
//! (fixtures/make_variants.py), so every variant must give the pixels of the original, which
//! itself matches wsidicom's reference regions.

mod common;

use common::{fixtures, slide_dir};
use haidef_wsi_dicom::{Slide, WsiError};

#[test]
fn every_encapsulation_reads_the_same_pixels() {
    let original = Slide::open(slide_dir("ihc-full").join("level-2.dcm")).unwrap();
    let expected = original.level(0).unwrap().read_all().unwrap();
    for name in ["no_bot", "no_bot_split", "bot_split", "eot"] {
        let slide = Slide::open(fixtures().join("variants").join(format!("{name}.dcm"))).unwrap();
        let level = slide.level(0).unwrap();
        // Raw frame bytes are the original's, whatever the fragmentation.
        for f in 0..level.info().number_of_frames {
            assert_eq!(level.frame_source().frame_bytes(f).unwrap(), original.level(0).unwrap().frame_source().frame_bytes(f).unwrap(), "{name}: frame {f}");
        }
        assert!(level.read_all().unwrap() == expected, "{name}: pixels differ");
    }
    let eot = Slide::open(fixtures().join("variants/eot.dcm")).unwrap();
    assert!(eot.level(0).unwrap().info().extended_offset_table.is_some());
}

#[test]
fn undecodable_transfer_syntax_is_named() {
    let err = Slide::open(fixtures().join("variants/rle_declared.dcm")).unwrap_err();
    assert!(matches!(err, WsiError::UnsupportedTransferSyntax { .. }), "{err:?}");
    let msg = err.to_string();
    assert!(msg.contains("rle_declared.dcm") && msg.contains("1.2.840.10008.1.2.5") && msg.contains("RLE"), "{msg}");
}
