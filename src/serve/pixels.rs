//! An instance's pixels → its patches as RGB8: inline images decoded (PNG, JPEG) within a
//! pixel limit, resized to `image_dimensions` as Google's server does, patches cut out of them (zero outside the image when the caller allows it),
//! EZ-WSI's per-patch PNGs taken as they are. Grey and RGBA become RGB, alpha dropped, as
//! Google's server converts them; EXIF orientation is not applied (Google's is not either).

use super::api::{ApiError, Code, Instance, Patch, Source};
use super::icc::IccTargets;
use super::resize::resize_rgb8;
use image::{ImageDecoder, ImageReader, Limits};
use std::io::Cursor;

/// An RGB8 image.
struct Rgb {
    width: i64,
    height: i64,
    data: Vec<u8>,
}

/// Pixels one request may decode and resize, over all its instances: a request of many small
/// images each resized to 10,000² would otherwise cost hours of CPU.
#[derive(Debug)]
pub struct PixelBudget(std::sync::atomic::AtomicU64);

impl PixelBudget {
    /// A budget of `pixels`.
    pub fn new(pixels: u64) -> Self {
        PixelBudget(std::sync::atomic::AtomicU64::new(pixels))
    }

    /// Takes `n` pixels for `what`, or says the request has used its budget.
    pub fn take(&self, n: u64, what: &str) -> Result<(), ApiError> {
        use std::sync::atomic::Ordering;
        self.0.fetch_update(Ordering::SeqCst, Ordering::SeqCst, |left| left.checked_sub(n)).map(|_| ()).map_err(|_| {
            ApiError::new(Code::ImageDimension, format!("{what}: the request's images, decoded and resized, exceed the server's budget of pixels per request"))
        })
    }
}

/// Decodes `bytes`; an image of more than `max_pixels`, or (with `expect`) of another size, is
/// refused from its header, before its pixels are decoded.
fn decode(bytes: &[u8], max_pixels: u64, budget: &PixelBudget, expect: Option<(i64, i64)>, what: &str) -> Result<(Rgb, Option<Vec<u8>>), ApiError> {
    let fail = |m: String| ApiError::new(Code::Image, format!("{what}: {m}"));
    let mut reader = ImageReader::new(Cursor::new(bytes)).with_guessed_format().map_err(|e| fail(e.to_string()))?;
    if !matches!(reader.format(), Some(image::ImageFormat::Png | image::ImageFormat::Jpeg)) {
        return Err(fail("not a PNG or JPEG image".into()));
    }
    let mut limits = Limits::default();
    limits.max_alloc = Some(max_pixels.saturating_mul(8).saturating_add(64 << 20));
    reader.limits(limits);
    let mut decoder = reader.into_decoder().map_err(|e| fail(e.to_string()))?;
    let (w, h) = decoder.dimensions();
    if u64::from(w) * u64::from(h) > max_pixels {
        return Err(ApiError::new(Code::ImageDimension, format!("{what}: {w}x{h} is more than the server's limit of {max_pixels} pixels")));
    }
    if let Some((ew, eh)) = expect.filter(|e| *e != (i64::from(w), i64::from(h))) {
        return Err(ApiError::new(Code::EzWsiState, format!("{what} is {w}x{h}, not {ew}x{eh}")));
    }
    budget.take(u64::from(w) * u64::from(h), what)?;
    let icc = decoder.icc_profile().ok().flatten().filter(|p| !p.is_empty());
    let img = image::DynamicImage::from_decoder(decoder).map_err(|e| fail(e.to_string()))?;
    Ok((Rgb { width: i64::from(w), height: i64::from(h), data: img.to_rgb8().into_raw() }, icc))
}

fn crop(img: &Rgb, p: &Patch, fully_inside: bool) -> Result<Vec<u8>, ApiError> {
    let inside = p.x >= 0 && p.y >= 0 && p.x + p.width <= img.width && p.y + p.height <= img.height;
    if fully_inside && !inside {
        return Err(ApiError::new(
            Code::PatchOutsideImage,
            format!("patch at ({}, {}) of {}x{} is not inside the {}x{} image", p.x, p.y, p.width, p.height, img.width, img.height),
        ));
    }
    Ok(cut(&img.data, (0, 0, img.width, img.height), (p.x, p.y, p.width, p.height)))
}

/// The `w`×`h` rectangle at (`x`, `y`) out of RGB8 pixels that cover `iw`×`ih` from (`ix`, `iy`),
/// black where they do not reach.
pub(super) fn cut(pixels: &[u8], (ix, iy, iw, ih): (i64, i64, i64, i64), (x, y, w, h): (i64, i64, i64, i64)) -> Vec<u8> {
    let mut out = vec![0u8; (w.max(0) * h.max(0) * 3) as usize];
    let (x0, x1) = (x.max(ix), (x + w).min(ix + iw));
    if x0 >= x1 {
        return out;
    }
    let n = ((x1 - x0) * 3) as usize;
    for row in y.max(iy)..(y + h).min(iy + ih) {
        let src = (((row - iy) * iw + (x0 - ix)) * 3) as usize;
        let dst = (((row - y) * w + (x0 - x)) * 3) as usize;
        out[dst..dst + n].copy_from_slice(&pixels[src..src + n]);
    }
    out
}

/// The RGB8 patches of an inline instance, in order, transformed to the instance's target
/// profile from the image's own (Google's order: the patch is cut, zero-padded, then
/// transformed). EZ-WSI's per-patch PNGs are used as they are (EZ-WSI transformed them).
pub fn patches(inst: &Instance, max_pixels: u64, budget: &PixelBudget, targets: &IccTargets) -> Result<Vec<Vec<u8>>, ApiError> {
    // Google's limit on image sides (not on DICOM levels).
    let image = !matches!(inst.source, Source::Dicom { .. });
    if let Some((w, h)) = inst.image_dimensions.filter(|(w, h)| image && (*w > 10_000 || *h > 10_000)) {
        return Err(ApiError::new(Code::ImageDimension, format!("image_dimensions {w}x{h}: a side over 10000 pixels")));
    }
    match &inst.source {
        Source::Image(bytes) => {
            let (mut img, icc) = decode(bytes, max_pixels, budget, None, "the image")?;
            // Google resizes raw_image_bytes (and fetched images), never EZ-WSI's
            // ez_wsi_state.image (EZ-WSI resized it before sending).
            if let (Some((w, h)), None) = (inst.image_dimensions, &inst.ez_normalization) {
                budget.take(u64::from(w) * u64::from(h), "image_dimensions")?;
                img = Rgb { width: i64::from(w), height: i64::from(h), data: resize_rgb8(&img.data, img.width as usize, img.height as usize, w as usize, h as usize) };
            }
            let transform = match inst.ez_normalization.as_deref() {
                // EZ-WSI transformed the pixels already: to this target, and dropped the profile.
                Some(done) if done != "NONE" => {
                    if done != inst.icc_profile {
                        return Err(ApiError::new(Code::EzWsiState, format!("ez_wsi_state says the image was transformed to {done}, but the request asks for {}", inst.icc_profile)));
                    }
                    if icc.is_some() {
                        return Err(ApiError::new(Code::EzWsiState, format!("ez_wsi_state says the image was transformed to {done}, but it still carries an ICC profile")));
                    }
                    None
                }
                _ => targets.transform(&inst.icc_profile, icc.as_deref(), Code::Image)?,
            };
            inst.patches
                .iter()
                .map(|p| {
                    let mut patch = crop(&img, p, inst.fully_inside)?;
                    if let Some(t) = &transform {
                        t.apply(&mut patch);
                    }
                    Ok(patch)
                })
                .collect()
        }
        Source::Patches { patches, source_size } => {
            patches
                .iter()
                .zip(&inst.patches)
                .enumerate()
                .map(|(i, (bytes, p))| {
                    // As Google's server: the coordinates are only echoed; "fully inside" asks
                    // that the patch fit in the source image's size.
                    if let (Some((w, h)), true) = (source_size, inst.fully_inside) {
                        if p.width > *w || p.height > *h {
                            return Err(ApiError::new(Code::PatchOutsideImage, format!("a {}x{} patch does not fit in the {w}x{h} source image", p.width, p.height)));
                        }
                    }
                    Ok(decode(bytes, max_pixels, budget, Some((p.width, p.height)), &format!("ez_wsi_state.patches[{i}]"))?.0.data)
                })
                .collect()
        }
        // dicom_path instances are read by DicomStores when the server has any.
        Source::Dicom { .. } => Err(ApiError::new(Code::UnapprovedDicomStore, "no DICOMweb store is approved on this server (the operator approves stores with --allow-dicomweb URL_PREFIX)")),
        Source::Uri(uri) => Err(match super::gcs::split(uri) {
            None => ApiError::new(Code::GcsImagePathFormat, "image_file_uri must be gs://BUCKET/OBJECT"),
            Some(_) => ApiError::new(
                Code::UnapprovedGcsBucket,
                "no Cloud Storage bucket is approved on this server (the operator approves buckets with --allow-gcs gs://BUCKET); or send the pixels (raw_image_bytes, or ez_wsi_state as EZ-WSI does)",
            ),
        }),
    }
}
