//! What the `predict_request` fuzz target does with one input (the server's `/predict` body,
//! from a stranger); shared with `tests/serve.rs`, which replays the kept inputs on stable.
//!
//! One input is a JSON body, optionally followed by a NUL byte and an image file: every JSON
//! string `"@image"` is replaced by the image's base64, so that the fuzzer mutates request
//! structure and image bytes apart (it would rarely make valid base64 of a PNG by itself).
#![allow(dead_code)]

use base64::Engine as _;
use haidef_wsi::serve::IccTargets;
use haidef_wsi::serve::{parse_request, read_request};
use haidef_wsi::serve::{patches, PixelBudget};

/// Path Foundation's patch side.
const PATCH: i64 = 224;
/// Smaller than the server's defaults (4000 patches, 100-Mpixel images, a 400-Mpixel budget
/// per request), so that a valid but large request stays within the fuzzer's 1 s and 2 GB.
const MAX_PATCHES: usize = 64;
const MAX_IMAGE_PIXELS: u64 = 16 << 20;
const REQUEST_PIXELS: u64 = 32 << 20;

/// A request body (and an image for its `"@image"` strings), checked as the server checks it,
/// then each instance's patches made as the server makes them: inline images decoded (PNG,
/// JPEG), resized to `image_dimensions`, cut, ICC-transformed; EZ-WSI patch lists decoded;
/// DICOMweb and Cloud Storage sources refused (no store or bucket approved).
pub fn predict_request(data: &[u8]) {
    let (json, image) = match data.iter().position(|b| *b == 0) {
        Some(nul) => (&data[..nul], &data[nul + 1..]),
        None => (data, &[][..]),
    };
    // What the server reads of a body (only the contract's fields) must give the answer the
    // whole body gives.
    let whole = serde_json::from_slice::<serde_json::Value>(json);
    let kept = read_request(json);
    assert_eq!(whole.is_ok(), kept.is_ok(), "JSON or not, read_request and serde_json must agree");
    if let (Ok(whole), Ok(kept)) = (&whole, &kept) {
        let answer = |v: &serde_json::Value| format!("{:?}", parse_request(v, PATCH, MAX_PATCHES));
        assert_eq!(answer(kept), answer(whole), "read_request changed the answer");
    }
    let Ok(mut body) = whole else { return };
    let b64 = base64::engine::general_purpose::STANDARD.encode(image);
    substitute(&mut body, &b64);
    let Ok(instances) = parse_request(&body, PATCH, MAX_PATCHES) else { return };
    let (budget, targets) = (PixelBudget::new(REQUEST_PIXELS), IccTargets::default());
    for inst in instances.into_iter().flatten() {
        let _ = patches(&inst, MAX_IMAGE_PIXELS, &budget, &targets);
    }
}

fn substitute(v: &mut serde_json::Value, b64: &str) {
    match v {
        serde_json::Value::String(s) if s == "@image" => *s = b64.to_string(),
        serde_json::Value::Array(items) => items.iter_mut().for_each(|i| substitute(i, b64)),
        serde_json::Value::Object(map) => map.values_mut().for_each(|i| substitute(i, b64)),
        _ => {}
    }
}
