//! The image-file source: PNG and JPEG files found in folders, decoded in parallel with the
//! `image` crate under a pixel limit (a decompression bomb is refused before anything large is
//! allocated), EXIF orientation applied, samples kept as stored (8- or 16-bit; grey, RGB; alpha
//! dropped). A file that cannot be used is recorded with its error, and the others go on.

use crate::engine::{Input, Source};
use crate::error::{PipelineError, Result};
use crate::files::Skipped;
use haidef_wsi_encoders::{ImageRef, InputSpec};
use image::{DynamicImage, ImageDecoder, ImageReader, Limits};
use rayon::prelude::*;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};

/// Pixels an image may have unless told otherwise: Pillow's own decompression-bomb limit
/// (`2 × Image.MAX_IMAGE_PIXELS`, about 179 million).
pub const DEFAULT_MAX_PIXELS: u64 = 178_956_970;

/// File extensions taken from folders (case-insensitive).
pub const EXTENSIONS: [&str; 3] = ["png", "jpg", "jpeg"];

/// A decoded image file.
#[derive(Debug, Clone)]
pub struct ImageFile {
    /// The file.
    pub path: PathBuf,
    /// Width as displayed (after EXIF orientation).
    pub width: usize,
    /// Height as displayed.
    pub height: usize,
    /// 1 (grey) or 3 (RGB).
    pub channels: usize,
    /// The samples, row-major, interleaved.
    pub samples: StoredSamples,
}

/// Samples as the file stores them.
#[derive(Debug, Clone)]
pub enum StoredSamples {
    /// 8-bit.
    U8(Vec<u8>),
    /// 16-bit (all 16 bits used).
    U16(Vec<u16>),
}

impl Input for ImageFile {
    fn image(&self) -> ImageRef<'_> {
        match &self.samples {
            StoredSamples::U8(d) => ImageRef::u8(self.width, self.height, self.channels, d),
            StoredSamples::U16(d) => ImageRef::u16(self.width, self.height, self.channels, d, 16),
        }
    }
}

/// An image file's key columns: `path`, `width`, `height` (as displayed).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImageKey {
    /// The file as given or found.
    pub path: String,
    /// Width after EXIF orientation.
    pub width: u32,
    /// Height after EXIF orientation.
    pub height: u32,
}

/// The image files source: decodes `files` a batch at a time in parallel, checks each against
/// the model's input on its own (so that one bad file costs only itself; the batcher would
/// refuse the whole batch), and yields the good ones in order.
pub struct ImageFiles {
    files: Vec<PathBuf>,
    max_pixels: u64,
    chunk: usize,
    spec: InputSpec,
}

impl ImageFiles {
    /// A source over `files`, decoding `chunk` at a time, refusing images above `max_pixels`
    /// and those the model's input `spec` cannot take.
    pub(crate) fn new(files: Vec<PathBuf>, max_pixels: u64, chunk: usize, spec: InputSpec) -> Self {
        ImageFiles { files, max_pixels, chunk: chunk.max(1), spec }
    }
}

impl Source for ImageFiles {
    type Key = ImageKey;
    type Input = ImageFile;

    fn len(&self) -> usize {
        self.files.len()
    }

    fn run(&mut self, emit: &mut dyn FnMut(ImageKey, ImageFile) -> bool, skip: &mut dyn FnMut(Skipped), cancel: &AtomicBool) -> Result<()> {
        let (max_pixels, spec) = (self.max_pixels, &self.spec);
        for chunk in self.files.chunks(self.chunk) {
            if cancel.load(Ordering::Relaxed) {
                return Err(PipelineError::Cancelled);
            }
            let decoded: Vec<std::result::Result<ImageFile, Skipped>> = chunk
                .par_iter()
                .map(|p| {
                    let skipped = |error: String| Skipped { path: p.display().to_string(), error };
                    let img = read_image(p, max_pixels).map_err(|e| skipped(e.to_string()))?;
                    spec.check(&img.image()).map_err(|e| skipped(format!("{}: {e}", p.display())))?;
                    Ok(img)
                })
                .collect();
            for d in decoded {
                match d {
                    Ok(img) => {
                        let key = ImageKey { path: img.path.display().to_string(), width: img.width as u32, height: img.height as u32 };
                        if !emit(key, img) {
                            return Ok(());
                        }
                    }
                    Err(s) => skip(s),
                }
            }
        }
        Ok(())
    }
}

/// The image files named: files as given, folders searched recursively for PNG and JPEG files
/// (sorted by path). A path that does not exist is an error.
pub fn find_images(paths: &[PathBuf]) -> Result<Vec<PathBuf>> {
    crate::files::find_files(paths, &EXTENSIONS)
}

/// Decodes a PNG or JPEG file (format from its bytes, not its name), refusing images of more
/// than `max_pixels` pixels before decoding them.
pub fn read_image(path: &Path, max_pixels: u64) -> Result<ImageFile> {
    let fail = |problem: String| PipelineError::Input { path: path.display().to_string(), problem };
    let reader = ImageReader::open(path).map_err(|e| fail(e.to_string()))?.with_guessed_format().map_err(|e| fail(e.to_string()))?;
    match reader.format() {
        Some(image::ImageFormat::Png | image::ImageFormat::Jpeg) => {}
        Some(other) => return Err(fail(format!("{other:?} images are not read here; expected PNG or JPEG"))),
        None => return Err(fail("not a readable PNG or JPEG file (unrecognised contents)".into())),
    }
    let mut reader = reader;
    let mut limits = Limits::default();
    // Decoded bytes of the largest allowed image at 16-bit RGBA, plus the decoder's own state.
    limits.max_alloc = Some(max_pixels.saturating_mul(8).saturating_add(64 << 20));
    reader.limits(limits);
    let mut decoder = reader.into_decoder().map_err(|e| fail(format!("not a readable PNG or JPEG file: {e}")))?;
    let (w, h) = decoder.dimensions();
    let pixels = u64::from(w) * u64::from(h);
    if pixels > max_pixels {
        return Err(fail(format!(
            "{w}x{h} = {pixels} pixels exceeds the limit of {max_pixels} (a decompression bomb?); raise the pixel limit (ImageOptions::max_pixels; --max-pixels in embed_images) if the image is real"
        )));
    }
    let orientation = decoder.orientation().map_err(|e| fail(format!("cannot read its orientation: {e}")))?;
    let mut img = DynamicImage::from_decoder(decoder).map_err(|e| fail(format!("cannot decode: {e}")))?;
    img.apply_orientation(orientation);
    let (width, height) = (img.width() as usize, img.height() as usize);
    let (channels, samples) = match img {
        DynamicImage::ImageLuma8(b) => (1, StoredSamples::U8(b.into_raw())),
        DynamicImage::ImageLumaA8(_) => (1, StoredSamples::U8(img.to_luma8().into_raw())),
        DynamicImage::ImageRgb8(b) => (3, StoredSamples::U8(b.into_raw())),
        DynamicImage::ImageLuma16(b) => (1, StoredSamples::U16(b.into_raw())),
        DynamicImage::ImageLumaA16(_) => (1, StoredSamples::U16(img.to_luma16().into_raw())),
        DynamicImage::ImageRgb16(b) => (3, StoredSamples::U16(b.into_raw())),
        DynamicImage::ImageRgba16(_) => (3, StoredSamples::U16(img.to_rgb16().into_raw())),
        // RGBA8 and anything else: RGB, alpha dropped (not composited), as Pillow's convert("RGB").
        _ => (3, StoredSamples::U8(img.to_rgb8().into_raw())),
    };
    Ok(ImageFile { path: path.to_path_buf(), width, height, channels, samples })
}
