//! JPEG decoding against libjpeg-turbo's own djpeg output (fixtures/jpeg, made by
//! fixtures/make_fixtures.sh with cjpeg/djpeg): YCbCr 4:2:0 and 4:2:2, RGB JPEG (no colour
//! transform), greyscale. Both candidate decoders are held to the same tolerance.

mod common;

use common::{assert_close, fixtures, load_png_rgb};

/// (name, JPEG bytes, width, height, libjpeg-turbo's decoding as RGB8).
type Case = (&'static str, Vec<u8>, u32, u32, Vec<u8>);

fn cases() -> Vec<Case> {
    ["ycc420", "ycc422", "rgb", "gray"]
        .into_iter()
        .map(|name| {
            let dir = fixtures().join("jpeg");
            let jpg = std::fs::read(dir.join(format!("{name}.jpg"))).unwrap();
            let (w, h, reference) = load_png_rgb(&dir.join(format!("{name}.ref.png")));
            (name, jpg, w, h, reference)
        })
        .collect()
}

#[test]
fn zune_jpeg_matches_libjpeg_turbo() {
    for (name, jpg, w, h, reference) in cases() {
        let mut out = vec![0u8; (w * h * 3) as usize];
        haidef_wsi_dicom::decode_jpeg_rgb(&jpg, &mut out, w as usize, h as usize).unwrap();
        assert_close(name, &out, &reference);
    }
}

#[test]
fn jpeg_decoder_matches_libjpeg_turbo() {
    for (name, jpg, _, _, reference) in cases() {
        let mut d = jpeg_decoder::Decoder::new(jpg.as_slice());
        let px = d.decode().unwrap();
        let rgb: Vec<u8> = if px.len() == reference.len() { px } else { px.iter().flat_map(|&g| [g, g, g]).collect() };
        assert_close(name, &rgb, &reference);
    }
}

#[test]
fn rgb_jpeg_is_not_colour_converted_twice() {
    // An RGB JPEG decoded as if it were YCbCr comes out with strongly shifted colours; the
    // tolerance test above would catch that, this one says what went wrong.
    let (_, jpg, w, h, reference) = cases().into_iter().find(|c| c.0 == "rgb").unwrap();
    let mut out = vec![0u8; (w * h * 3) as usize];
    haidef_wsi_dicom::decode_jpeg_rgb(&jpg, &mut out, w as usize, h as usize).unwrap();
    let (mean, _) = common::diff_stats(&out, &reference);
    assert!(mean.iter().all(|m| *m < 2.0), "RGB JPEG colours shifted: {mean:?}");
}

#[test]
fn wrong_size_and_garbage_are_errors() {
    let (_, jpg, w, h, _) = cases().into_iter().next().unwrap();
    let mut out = vec![0u8; ((w + 1) * h * 3) as usize];
    let err = haidef_wsi_dicom::decode_jpeg_rgb(&jpg, &mut out, (w + 1) as usize, h as usize).unwrap_err();
    assert!(err.contains("Columns x Rows"), "{err}");
    let mut out = vec![0u8; (w * h * 3) as usize];
    assert!(haidef_wsi_dicom::decode_jpeg_rgb(&jpg[..jpg.len() / 3], &mut out, w as usize, h as usize).is_err());
    assert!(haidef_wsi_dicom::decode_jpeg_rgb(&[0xFF, 0xD8, 1, 2, 3], &mut out, w as usize, h as usize).is_err());
}
