//! An instance's pixels → its patches as RGB8: inline images decoded (PNG, JPEG) within a
//! pixel limit, patches cut out of them (zero outside the image when the caller allows it),
//! EZ-WSI's per-patch PNGs taken as they are. Grey and RGBA become RGB, alpha dropped, as
//! Google's server converts them; EXIF orientation is not applied (Google's is not either).

use super::api::{ApiError, Code, Instance, Patch, Source};
use image::{ImageDecoder, ImageReader, Limits};
use std::io::Cursor;

/// An RGB8 image.
struct Rgb {
    width: i64,
    height: i64,
    data: Vec<u8>,
}

/// Decodes `bytes`; an image of more than `max_pixels`, or (with `expect`) of another size, is
/// refused from its header, before its pixels are decoded.
fn decode(bytes: &[u8], max_pixels: u64, expect: Option<(i64, i64)>, what: &str) -> Result<(Rgb, bool), ApiError> {
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
    let has_icc = decoder.icc_profile().ok().flatten().is_some_and(|p| !p.is_empty());
    let img = image::DynamicImage::from_decoder(decoder).map_err(|e| fail(e.to_string()))?;
    Ok((Rgb { width: i64::from(w), height: i64::from(h), data: img.to_rgb8().into_raw() }, has_icc))
}

fn crop(img: &Rgb, p: &Patch, fully_inside: bool) -> Result<Vec<u8>, ApiError> {
    let inside = p.x >= 0 && p.y >= 0 && p.x + p.width <= img.width && p.y + p.height <= img.height;
    if fully_inside && !inside {
        return Err(ApiError::new(
            Code::PatchOutsideImage,
            format!("patch at ({}, {}) of {}x{} is not inside the {}x{} image", p.x, p.y, p.width, p.height, img.width, img.height),
        ));
    }
    let mut out = vec![0u8; (p.width * p.height * 3) as usize];
    for row in 0..p.height {
        let y = p.y + row;
        if !(0..img.height).contains(&y) {
            continue;
        }
        let (x0, x1) = (p.x.max(0), (p.x + p.width).min(img.width));
        if x0 >= x1 {
            continue;
        }
        let src = ((y * img.width + x0) * 3) as usize;
        let dst = ((row * p.width + (x0 - p.x)) * 3) as usize;
        let n = ((x1 - x0) * 3) as usize;
        out[dst..dst + n].copy_from_slice(&img.data[src..src + n]);
    }
    Ok(out)
}

/// The RGB8 patches of an inline instance, in order.
pub fn patches(inst: &Instance, max_pixels: u64) -> Result<Vec<Vec<u8>>, ApiError> {
    if inst.image_dimensions.is_some() {
        return Err(ApiError::new(Code::ImageDimension, "image_dimensions (resizing the source) is not supported by this server yet"));
    }
    match &inst.source {
        Source::Image(bytes) => {
            let (img, has_icc) = decode(bytes, max_pixels, None, "the image")?;
            // Google transforms only images that carry a profile; this server does not
            // transform yet, so it says so rather than embed untransformed pixels.
            if has_icc && inst.icc_profile != "NONE" {
                return Err(ApiError::new(Code::InvalidIccProfileTransform, format!("ICC transforms to {} are not supported by this server yet", inst.icc_profile)));
            }
            inst.patches.iter().map(|p| crop(&img, p, inst.fully_inside)).collect()
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
                    Ok(decode(bytes, max_pixels, Some((p.width, p.height)), &format!("ez_wsi_state.patches[{i}]"))?.0.data)
                })
                .collect()
        }
        Source::Dicom { .. } => Err(ApiError::new(Code::UnapprovedDicomStore, "DICOMweb sources are not served yet: no DICOM store is approved on this server")),
        Source::Uri(_) => Err(ApiError::new(
            Code::UnapprovedGcsBucket,
            "this server fetches no image_file_uri; send the pixels (raw_image_bytes, or ez_wsi_state.image / .patches as EZ-WSI does)",
        )),
    }
}
