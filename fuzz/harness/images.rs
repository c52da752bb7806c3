//! What the `image_file` fuzz target does with one input (the facade's image path of
//! `embed_images`); shared with `tests/fuzz_regressions.rs`. The first byte picks the file's
//! extension (the decoder goes by contents, but users' files carry one).
#![allow(dead_code)]

/// An image file as bytes, read as `embed_images` reads one (a 16-Mpixel limit here, so a
/// valid but huge image is refused rather than decoded).
pub fn image_file(data: &[u8]) {
    let Some((&pick, bytes)) = data.split_first() else { return };
    let ext = ["png", "jpg"][pick as usize % 2];
    let path = std::env::temp_dir().join(format!("haidef-fuzz-{}.{ext}", std::process::id()));
    if std::fs::write(&path, bytes).is_ok() {
        let _ = haidef_wsi::read_image(&path, 16 << 20);
    }
}
