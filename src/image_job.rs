//! The image job: image files (the [`crate::images`] source) → the engine → Parquet, one row
//! per image: `path` (Utf8), `width`, `height` (UInt32, as displayed), `embedding`. Files that
//! cannot be used are skipped and listed in the file's metadata (`failed_files`, JSON), with
//! `files_embedded`.

use crate::engine::{self, EngineOptions, Sink, StageTimes};
use crate::error::Result;
use crate::images::{ImageFiles, ImageKey, Skipped, DEFAULT_MAX_PIXELS};
use crate::sink::{provenance, ParquetSink};
use crate::zero_shot::Prompts;
use arrow_array::{ArrayRef, Float32Array, StringArray, UInt32Array};
use arrow_schema::{DataType, Field};
use haidef_wsi_encoders::Encoder;
use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicBool;
use std::sync::Arc;
use std::time::Instant;

/// How the image job runs.
#[derive(Debug, Clone, Copy)]
pub struct ImageJobOptions {
    /// Images per encoder batch (and per parallel decoding step).
    pub batch_size: usize,
    /// Batches in flight between two stages.
    pub queue_depth: usize,
    /// Images with more pixels are refused (decompression bombs).
    pub max_pixels: u64,
}

impl Default for ImageJobOptions {
    fn default() -> Self {
        ImageJobOptions { batch_size: 8, queue_depth: 4, max_pixels: DEFAULT_MAX_PIXELS }
    }
}

/// What the image job did.
#[derive(Debug, Clone)]
pub struct ImageJobSummary {
    /// Images embedded (rows written).
    pub embedded: usize,
    /// Files skipped, with their errors.
    pub skipped: Vec<Skipped>,
    /// The Parquet file written.
    pub output: PathBuf,
    /// Wall time.
    pub seconds: f64,
    /// Busy time per stage.
    pub stages: StageTimes,
}

struct ImageSink<'p> {
    parquet: ParquetSink,
    prompts: Option<&'p Prompts>,
    dim: usize,
}

impl Sink<ImageKey> for ImageSink<'_> {
    fn write(&mut self, keys: Vec<ImageKey>, embeddings: &[f32]) -> Result<()> {
        let mut columns: Vec<ArrayRef> = vec![
            Arc::new(StringArray::from_iter_values(keys.iter().map(|k| k.path.as_str()))),
            Arc::new(UInt32Array::from_iter_values(keys.iter().map(|k| k.width))),
            Arc::new(UInt32Array::from_iter_values(keys.iter().map(|k| k.height))),
        ];
        if let Some(p) = self.prompts {
            columns.extend(p.score(embeddings, self.dim).into_iter().map(|s| Arc::new(Float32Array::from(s)) as ArrayRef));
        }
        self.parquet.write_columns(columns, embeddings)
    }
}

/// The image job, set up step by step and then run:
///
/// ```no_run
/// # fn main() -> Result<(), Box<dyn std::error::Error>> {
/// use haidef_wsi::{encoders::{candle::{DType, Device}, registry}, image_job::ImageJob, images::find_images};
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
pub struct ImageJob<'a> {
    files: Vec<PathBuf>,
    encoder: &'a dyn Encoder,
    out: PathBuf,
    model_name: Option<&'a str>,
    prompts: Vec<String>,
    options: ImageJobOptions,
    cancel: Option<&'a AtomicBool>,
    progress: Option<&'a (dyn Fn(usize, usize) + Sync)>,
    on_skip: Option<&'a (dyn Fn(&Skipped) + Sync)>,
}

impl<'a> ImageJob<'a> {
    /// Embeds `files` with `encoder` into the Parquet file `out` (written atomically; also when
    /// every file was skipped, so that the file says why), with [`ImageJobOptions::default`].
    pub fn new(files: Vec<PathBuf>, encoder: &'a dyn Encoder, out: impl AsRef<Path>) -> Self {
        ImageJob { files, encoder, out: out.as_ref().to_path_buf(), model_name: None, prompts: Vec::new(), options: ImageJobOptions::default(), cancel: None, progress: None, on_skip: None }
    }

    /// The name the model was chosen by (e.g. the registry's), recorded as `model` in the
    /// file's metadata.
    pub fn model_name(mut self, name: &'a str) -> Self {
        self.model_name = Some(name);
        self
    }

    /// Zero-shot prompts (models with a text side, e.g. MedSigLIP): each adds a Float32 score
    /// column named after it (see [`crate::zero_shot`]).
    pub fn prompts(mut self, prompts: Vec<String>) -> Self {
        self.prompts = prompts;
        self
    }

    /// Batch size, queue depth and the pixel limit.
    pub fn options(mut self, options: ImageJobOptions) -> Self {
        self.options = options;
        self
    }

    /// A flag that stops the job promptly when set (nothing is left half-written).
    pub fn cancel(mut self, flag: &'a AtomicBool) -> Self {
        self.cancel = Some(flag);
        self
    }

    /// Called with (rows written, files given) after each batch is written.
    pub fn progress(mut self, progress: &'a (dyn Fn(usize, usize) + Sync)) -> Self {
        self.progress = Some(progress);
        self
    }

    /// Called with each file that is skipped, and why.
    pub fn on_skip(mut self, on_skip: &'a (dyn Fn(&Skipped) + Sync)) -> Self {
        self.on_skip = Some(on_skip);
        self
    }

    /// Runs the job.
    pub fn run(self) -> Result<ImageJobSummary> {
        let never = AtomicBool::new(false);
        let cancel = self.cancel.unwrap_or(&never);
        let progress = self.progress.unwrap_or(&|_, _| {});
        let on_skip = self.on_skip.unwrap_or(&|_| {});
        run(self.files, self.encoder, self.model_name, &self.prompts, &self.out, &self.options, cancel, progress, on_skip)
    }
}

#[allow(clippy::too_many_arguments)]
fn run(
    files: Vec<PathBuf>,
    encoder: &dyn Encoder,
    model_name: Option<&str>,
    prompts: &[String],
    out: &Path,
    opts: &ImageJobOptions,
    cancel: &AtomicBool,
    progress: &(dyn Fn(usize, usize) + Sync),
    on_skip: &(dyn Fn(&Skipped) + Sync),
) -> Result<ImageJobSummary> {    let start = Instant::now();
    // Each image is checked against the model's input on its own, so that one bad file costs
    // only itself (the engine's batcher would refuse the whole batch).
    let spec = encoder.input_spec();
    let check = |img: &haidef_wsi_encoders::ImageRef<'_>| spec.check(img);
    let mut meta = provenance(encoder);
    if let Some(name) = model_name {
        meta.insert("model".to_string(), name.to_string());
    }
    let mut keys = vec![Field::new("path", DataType::Utf8, false), Field::new("width", DataType::UInt32, false), Field::new("height", DataType::UInt32, false)];
    let prompts = if prompts.is_empty() {
        None
    } else {
        let p = Prompts::new(encoder, prompts, &["path", "width", "height", "embedding"])?;
        p.describe_in(&mut meta);
        keys.extend(p.texts().iter().map(|t| Field::new(t, DataType::Float32, false)));
        Some(p)
    };
    let parquet = ParquetSink::create_with(out, keys, &encoder.output().shape(), meta)?;
    let mut sink = ImageSink { parquet, prompts: prompts.as_ref(), dim: encoder.embedding_dim() };
    let mut source = ImageFiles::new(files, opts.max_pixels, opts.batch_size, &check, on_skip);
    let engine_opts = EngineOptions { batch_size: opts.batch_size, queue_depth: opts.queue_depth };
    let report = engine::run(&mut source, encoder, &mut sink, engine_opts, cancel, progress)?;
    // Known only now: appended to the file's key-value metadata when it is closed.
    let failed: Vec<serde_json::Value> = source.skipped.iter().map(|s| serde_json::json!({"path": s.path, "error": s.error})).collect();
    sink.parquet.append_metadata("files_embedded", &report.rows.to_string());
    sink.parquet.append_metadata("failed_files", &serde_json::Value::Array(failed).to_string());
    let output = sink.parquet.finish()?;
    Ok(ImageJobSummary { embedded: report.rows, skipped: source.skipped, output, seconds: start.elapsed().as_secs_f64(), stages: report.stages })
}
