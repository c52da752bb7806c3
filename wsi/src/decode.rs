//! Frame decoding to RGB8: JPEG baseline (zune-jpeg), JPEG 2000 (openjp2, pure Rust through the
//! jpeg2k crate) and native little-endian pixels. Greyscale is expanded to three channels.
//!
//! Colour handling follows the codestream, not only the header: scanners write
//! `YBR_FULL_422` while their JPEG frames are often 4:2:0; the JPEG decoder reads the sampling
//! factors and the Adobe/JFIF markers itself and converts YCbCr to RGB exactly once.

use crate::error::{Location, Result, WsiError};
use crate::image_info::ImageInfo;

/// The codecs this crate decodes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Codec {
    /// JPEG Baseline (Process 1), 8-bit: 1.2.840.10008.1.2.4.50.
    JpegBaseline,
    /// JPEG 2000, lossless or lossy: 1.2.840.10008.1.2.4.90 / .91 (and HTJ2K is not included).
    Jpeg2000,
    /// Uncompressed little-endian pixels: 1.2.840.10008.1.2.1 (explicit) or 1.2.840.10008.1.2 (implicit).
    Native,
}

impl Codec {
    /// The codec for a transfer syntax UID, or the error naming it.
    pub fn for_transfer_syntax(uid: &str, location: &Location) -> Result<Codec> {
        match uid {
            "1.2.840.10008.1.2.4.50" => Ok(Codec::JpegBaseline),
            #[cfg(feature = "jpeg2000")]
            "1.2.840.10008.1.2.4.90" | "1.2.840.10008.1.2.4.91" => Ok(Codec::Jpeg2000),
            #[cfg(not(feature = "jpeg2000"))]
            "1.2.840.10008.1.2.4.90" | "1.2.840.10008.1.2.4.91" => Err(WsiError::UnsupportedTransferSyntax {
                location: location.clone(),
                uid: uid.to_string(),
                name: format!("{}; this build has no JPEG 2000 decoder: enable the `jpeg2000` feature", transfer_syntax_name(uid)),
            }),
            "1.2.840.10008.1.2.1" | "1.2.840.10008.1.2" => Ok(Codec::Native),
            other => {
                Err(WsiError::UnsupportedTransferSyntax { location: location.clone(), uid: other.to_string(), name: transfer_syntax_name(other).to_string() })
            }
        }
    }
}

/// Human name of common transfer syntaxes, for messages.
pub fn transfer_syntax_name(uid: &str) -> &'static str {
    use dicom_encoding::TransferSyntaxIndex;
    dicom_transfer_syntax_registry::TransferSyntaxRegistry.get(uid).map(|ts| ts.name()).unwrap_or("unknown")
}

/// How to turn one frame's stored bytes into RGB8.
#[derive(Debug, Clone)]
pub struct FrameDecoder {
    codec: Codec,
    width: u32,
    height: u32,
    samples: u16,
    photometric: String,
    planar: bool,
}

impl FrameDecoder {
    /// Checks that the instance's pixel format is one we decode, and prepares the decoder.
    pub fn new(info: &ImageInfo) -> Result<Self> {
        let codec = Codec::for_transfer_syntax(&info.transfer_syntax, &info.location)?;
        let unsupported = |problem: String| WsiError::UnsupportedPixelFormat { location: info.location.clone(), problem };
        if info.bits_allocated != 8 {
            return Err(unsupported(format!("BitsAllocated {} (only 8-bit images are supported)", info.bits_allocated)));
        }
        if info.samples_per_pixel != 1 && info.samples_per_pixel != 3 {
            return Err(unsupported(format!("SamplesPerPixel {} (expected 1 or 3)", info.samples_per_pixel)));
        }
        let photometric = info.photometric.to_ascii_uppercase();
        if codec == Codec::Native && !matches!(photometric.as_str(), "RGB" | "YBR_FULL" | "MONOCHROME1" | "MONOCHROME2") {
            return Err(unsupported(format!("PhotometricInterpretation {photometric} in uncompressed data (expected RGB, YBR_FULL, MONOCHROME1/2)")));
        }
        Ok(FrameDecoder {
            codec,
            width: info.tile_width,
            height: info.tile_height,
            samples: info.samples_per_pixel,
            photometric,
            planar: info.planar_configuration == 1,
        })
    }

    /// The codec in use.
    pub fn codec(&self) -> Codec {
        self.codec
    }

    /// Bytes of one decoded RGB8 frame.
    pub fn frame_len(&self) -> usize {
        self.width as usize * self.height as usize * 3
    }

    /// Decodes one frame into `out` (RGB8, row-major, `frame_len()` bytes). `frame` is 0-based
    /// and only used in errors.
    pub fn decode_into(&self, bytes: &[u8], out: &mut [u8], location: &str, frame: u32) -> Result<()> {
        assert_eq!(out.len(), self.frame_len(), "output buffer size");
        let fail = |problem: String| WsiError::frame(location, frame, problem);
        match self.codec {
            Codec::JpegBaseline => self.decode_jpeg(bytes, out).map_err(fail),
            Codec::Jpeg2000 => self.decode_j2k(bytes, out).map_err(fail),
            Codec::Native => self.decode_native(bytes, out).map_err(fail),
        }
    }

    /// Decodes one frame into a new buffer.
    pub fn decode(&self, bytes: &[u8], location: &str, frame: u32) -> Result<Vec<u8>> {
        let mut out = vec![0u8; self.frame_len()];
        self.decode_into(bytes, &mut out, location, frame)?;
        Ok(out)
    }

    #[cfg(feature = "jpeg2000")]
    fn check_size(&self, codec: &str, w: usize, h: usize) -> std::result::Result<(), String> {
        if w != self.width as usize || h != self.height as usize {
            return Err(format!("{codec} frame is {w}x{h} but Columns x Rows say {}x{}", self.width, self.height));
        }
        Ok(())
    }

    fn decode_jpeg(&self, bytes: &[u8], out: &mut [u8]) -> std::result::Result<(), String> {
        decode_jpeg_rgb(bytes, out, self.width as usize, self.height as usize).map_err(|e| format!("JPEG decoding failed: {e}"))
    }

    #[cfg(not(feature = "jpeg2000"))]
    fn decode_j2k(&self, _bytes: &[u8], _out: &mut [u8]) -> std::result::Result<(), String> {
        Err("this build has no JPEG 2000 decoder: enable the `jpeg2000` feature".into())
    }

    #[cfg(feature = "jpeg2000")]
    fn decode_j2k(&self, bytes: &[u8], out: &mut [u8]) -> std::result::Result<(), String> {
        use jpeg2k::{Image, ImagePixelData};
        let image = Image::from_bytes(bytes).map_err(|e| format!("JPEG 2000 decoding failed: {e}"))?;
        let pixels = image.get_pixels(None).map_err(|e| format!("JPEG 2000 decoding failed: {e}"))?;
        self.check_size("JPEG 2000", pixels.width as usize, pixels.height as usize)?;
        match pixels.data {
            ImagePixelData::Rgb8(rgb) if rgb.len() == out.len() => {
                out.copy_from_slice(&rgb);
                if self.photometric == "YBR_FULL" {
                    // Components stored as YCbCr without a multi-component transform.
                    ybr_full_to_rgb(out);
                }
            }
            ImagePixelData::L8(grey) if grey.len() * 3 == out.len() => grey_to_rgb(&grey, out),
            other => return Err(format!("JPEG 2000 frame has an unsupported layout ({:?}); expected 8-bit RGB or greyscale", std::mem::discriminant(&other))),
        }
        Ok(())
    }

    fn decode_native(&self, bytes: &[u8], out: &mut [u8]) -> std::result::Result<(), String> {
        let pixels = self.width as usize * self.height as usize;
        let expected = pixels * self.samples as usize;
        if bytes.len() < expected {
            return Err(format!("uncompressed frame has {} bytes, expected {expected}", bytes.len()));
        }
        let bytes = &bytes[..expected];
        match (self.samples, self.planar) {
            (1, _) => {
                grey_to_rgb(bytes, out);
                if self.photometric == "MONOCHROME1" {
                    out.iter_mut().for_each(|v| *v = 255 - *v);
                }
            }
            (_, false) => out.copy_from_slice(bytes),
            (_, true) => {
                let (r, rest) = bytes.split_at(pixels);
                let (g, b) = rest.split_at(pixels);
                for (i, px) in out.chunks_exact_mut(3).enumerate() {
                    px.copy_from_slice(&[r[i], g[i], b[i]]);
                }
            }
        }
        if self.samples == 3 && self.photometric == "YBR_FULL" {
            ybr_full_to_rgb(out);
        }
        Ok(())
    }
}

/// Decodes a baseline JPEG into RGB8 of the given size with zune-jpeg (strict mode, so that a
/// damaged stream is an error rather than a grey block). Greyscale JPEGs come out as RGB.
pub fn decode_jpeg_rgb(bytes: &[u8], out: &mut [u8], width: usize, height: usize) -> std::result::Result<(), String> {
    use zune_core::bytestream::ZCursor;
    use zune_core::colorspace::ColorSpace;
    use zune_core::options::DecoderOptions;
    let options = DecoderOptions::default().set_strict_mode(true).jpeg_set_out_colorspace(ColorSpace::RGB);
    let mut decoder = zune_jpeg::JpegDecoder::new_with_options(ZCursor::new(bytes), options);
    decoder.decode_headers().map_err(|e| e.to_string())?;
    let info = decoder.info().ok_or("no image header")?;
    let (w, h) = (info.width as usize, info.height as usize);
    if w != width || h != height {
        return Err(format!("JPEG frame is {w}x{h} but Columns x Rows say {width}x{height}"));
    }
    let colorspace = decoder.output_colorspace().ok_or("no output colour space")?;
    match colorspace.num_components() {
        3 => decoder.decode_into(out).map_err(|e| e.to_string()),
        1 => {
            let mut grey = vec![0u8; w * h];
            decoder.decode_into(&mut grey).map_err(|e| e.to_string())?;
            grey_to_rgb(&grey, out);
            Ok(())
        }
        n => Err(format!("JPEG decodes to {n} components ({colorspace:?}); expected RGB or greyscale")),
    }
}

fn grey_to_rgb(grey: &[u8], out: &mut [u8]) {
    for (px, &g) in out.chunks_exact_mut(3).zip(grey) {
        px.copy_from_slice(&[g, g, g]);
    }
}

/// YCbCr (full range, as in PS3.3 C.7.6.3.1.2) to RGB, in place.
fn ybr_full_to_rgb(px: &mut [u8]) {
    for p in px.chunks_exact_mut(3) {
        let (y, cb, cr) = (f32::from(p[0]), f32::from(p[1]) - 128.0, f32::from(p[2]) - 128.0);
        let r = y + 1.402 * cr;
        let g = y - 0.344_136 * cb - 0.714_136 * cr;
        let b = y + 1.772 * cb;
        p[0] = r.round().clamp(0.0, 255.0) as u8;
        p[1] = g.round().clamp(0.0, 255.0) as u8;
        p[2] = b.round().clamp(0.0, 255.0) as u8;
    }
}
