//! The image job: image files (the [`ImageFiles`] source) → the [`Job`] runner → Parquet, one
//! row per image: `path` (Utf8), `width`, `height` (UInt32, as displayed), then any score
//! columns and `embedding`. Files that cannot be used are skipped and listed in the file's
//! metadata (`failed_files`, JSON), with `files_embedded`.

use crate::error::Result;
use crate::files::files_metadata;
use crate::image::read::{ImageFiles, ImageKey, DEFAULT_MAX_PIXELS};
use crate::job::{Finishing, Job, Modality, Opened, Opening, OutputLayout};
use arrow_array::{ArrayRef, StringArray, UInt32Array};
use arrow_schema::{DataType, Field};
use haidef_wsi_encoders::Encoder;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// How image files are read. Batch size and queue depth are the job's ([`Job::batch_size`];
/// 8 images unless set).
#[derive(Debug, Clone, Copy)]
#[non_exhaustive]
pub struct ImageOptions {
    /// Images with more pixels are refused (decompression bombs).
    pub max_pixels: u64,
}

impl Default for ImageOptions {
    fn default() -> Self {
        ImageOptions { max_pixels: DEFAULT_MAX_PIXELS }
    }
}

impl ImageOptions {
    /// These options with another pixel limit.
    pub fn max_pixels(mut self, max_pixels: u64) -> Self {
        self.max_pixels = max_pixels;
        self
    }
}

/// The image-file modality: one row per file.
pub struct Images {
    files: Vec<PathBuf>,
    options: ImageOptions,
}

/// What an image job did (the image modality adds nothing to [`crate::JobSummary`]).
pub type ImageJobSummary = crate::job::JobSummary<()>;

/// The image job, set up step by step and then run (a [`Job`] of [`Images`]):
///
/// ```no_run
/// # fn main() -> Result<(), Box<dyn std::error::Error>> {
/// use haidef_wsi::{encoders::{candle::{DType, Device}, registry}, find_images, ImageJob};
/// let entry = registry::find("vit_base_patch16_224")?;
/// let model = entry.untrained(&Device::Cpu, DType::F32)?;
/// let files = find_images(&["photos/".into()])?;
/// let summary = ImageJob::new(files, model.as_ref(), "embeddings.parquet")
///     .model_name(entry.name)
///     .on_skip(&|s| eprintln!("skipped: {}", s.error))
///     .run()?;
/// println!("{} embedded, {} skipped", summary.embedded, summary.skipped.len());
/// # Ok(()) }
/// ```
pub type ImageJob<'a> = Job<'a, Images>;

impl<'a> Job<'a, Images> {
    /// Embeds `files` with `encoder` into the Parquet file `out` (written atomically; also when
    /// every file was skipped, so that the file says why), with [`ImageOptions::default`].
    pub fn new(files: Vec<PathBuf>, encoder: &'a dyn Encoder, out: impl AsRef<Path>) -> Self {
        Job::of(Images { files, options: ImageOptions::default() }, encoder, out)
    }

    /// The pixel limit.
    pub fn options(mut self, options: ImageOptions) -> Self {
        self.modality_mut().options = options;
        self
    }
}

impl Modality for Images {
    type Source = ImageFiles;
    type Report = ();
    const LAYOUT: OutputLayout = OutputLayout::File;
    const DEFAULT_BATCH_SIZE: usize = 8;

    fn open(&mut self, opening: Opening<'_>) -> Result<Opened<ImageFiles>> {
        let files = std::mem::take(&mut self.files);
        // Decoded a batch at a time, in parallel.
        let source = ImageFiles::new(files, self.options.max_pixels, opening.batch_size, opening.encoder.input_spec().clone());
        let keys = vec![Field::new("path", DataType::Utf8, false), Field::new("width", DataType::UInt32, false), Field::new("height", DataType::UInt32, false)];
        Ok(Opened { source, keys })
    }

    fn key_columns(&self, keys: &[ImageKey]) -> Vec<ArrayRef> {
        vec![
            Arc::new(StringArray::from_iter_values(keys.iter().map(|k| k.path.as_str()))),
            Arc::new(UInt32Array::from_iter_values(keys.iter().map(|k| k.width))),
            Arc::new(UInt32Array::from_iter_values(keys.iter().map(|k| k.height))),
        ]
    }

    fn finish(&mut self, _source: ImageFiles, done: &mut Finishing<'_, ImageKey>) -> Result<()> {
        // Known only now: appended to the file's key-value metadata when it is closed.
        done.metadata.extend(files_metadata("files_embedded", done.rows, done.skipped));
        Ok(())
    }
}
