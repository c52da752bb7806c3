//! The one job every modality runs. [`Job`] owns what every job shares: the encoder, batch
//! size and queue depth, the cancel flag, progress and skip reporting, the output file's
//! provenance metadata, zero-shot score columns, the after-steps and the summary with stage
//! times. A modality ([`Modality`]) brings only what is its own: its source of inputs, its key
//! columns, and its after-step (pictures, checks, metadata known at the end).
//!
//! A run: the modality opens its source → the engine (reader, encoder, writer threads) → the
//! Parquet sink → the modality's after-step → commit. Outputs are written under temporary
//! names and committed last, so a job that fails leaves no finished-looking file and a job
//! whose Parquet file is committed has succeeded.

use crate::engine::{self, EngineOptions, Reporting, Sink, Source};
use crate::error::{PipelineError, Result};
use crate::files::Skipped;
use crate::output::atomic::Staging;
use crate::output::parquet::{provenance, ParquetSink};
use crate::zero_shot::Prompts;
use arrow_array::{ArrayRef, Float32Array};
use arrow_schema::{DataType, Field};
use haidef_wsi_encoders::Encoder;
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicBool;
use std::sync::Arc;
use std::time::Instant;

use crate::engine::StageTimes;

/// The key type of a modality's inputs.
pub type KeyOf<M> = <<M as Modality>::Source as Source>::Key;

/// Where a job's outputs go.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OutputLayout {
    /// `out` is the Parquet file; pictures go where the modality says.
    File,
    /// `out` is a folder holding `embeddings.parquet` and the pictures, published together
    /// (see the README's "Outputs: finished or absent").
    Folder,
}

/// What a modality is told when its source is opened: the encoder and the file's metadata so
/// far (provenance), to which it adds its own entries.
#[non_exhaustive]
pub struct Opening<'o> {
    /// The model.
    pub encoder: &'o dyn Encoder,
    /// The output file's key-value metadata, fixed when the file is created.
    pub metadata: &'o mut HashMap<String, String>,
    /// Inputs per encoder batch (a source may decode this many at a time in parallel).
    pub batch_size: usize,
}

/// What a modality's source and key columns are.
pub struct Opened<S> {
    /// The inputs.
    pub source: S,
    /// The key columns' fields, in the order [`Modality::key_columns`] gives them.
    pub keys: Vec<Field>,
}

/// What the after-step is given: the rows written and where to put pictures.
#[non_exhaustive]
pub struct Finishing<'f, K> {
    /// The model.
    pub encoder: &'f dyn Encoder,
    /// Rows written.
    pub rows: usize,
    /// The keys of the rows kept ([`Modality::keeps_row`]), in file order.
    pub keys: &'f [K],
    /// Their embeddings, `keys.len() × dim`.
    pub embeddings: &'f [f32],
    /// Embedding width.
    pub dim: usize,
    /// The zero-shot prompts, in order.
    pub prompts: &'f [String],
    /// Per prompt, the score of every row kept.
    pub scores: &'f [Vec<f32>],
    /// The inputs the source could not use.
    pub skipped: &'f [Skipped],
    /// Where to draw pictures: the staging folder of a [`OutputLayout::Folder`] job (moved into
    /// the output folder with the Parquet file), `None` for a [`OutputLayout::File`] job (which
    /// writes its pictures, atomically, where it was told).
    pub staging: Option<&'f Path>,
    /// Key-value pairs to add to the Parquet file's metadata when it is closed.
    pub metadata: Vec<(String, String)>,
    /// Pictures written, in the order they are reported.
    pub pictures: Vec<PathBuf>,
}

/// One kind of input (slides, image files, audio recordings, ...): what the [`Job`] runner
/// needs to know that is not shared. Adding a modality is one implementation of this trait and
/// a constructor for `Job<'_, YourModality>`; docs/ARCHITECTURE.md walks through it.
///
/// A whole modality, here RGB images already in memory, keyed by a name:
///
/// ```
/// use haidef_wsi::{Finishing, Input, Job, Modality, Opened, Opening, OutputLayout, Skipped, Source};
/// use haidef_wsi::encoders::{candle::{DType, Device}, path_foundation, ImageRef};
/// use arrow_array::{ArrayRef, StringArray};
/// use arrow_schema::{DataType, Field};
/// use std::sync::{atomic::AtomicBool, Arc};
///
/// /// A 224×224 RGB8 image.
/// struct Pixels(Vec<u8>);
/// impl Input for Pixels {
///     fn image(&self) -> ImageRef<'_> {
///         ImageRef::rgb(224, 224, &self.0)
///     }
/// }
///
/// /// The source: yields each named image; an empty one cannot be used.
/// struct Named(Vec<(String, Vec<u8>)>);
/// impl Source for Named {
///     type Key = String;
///     type Input = Pixels;
///     fn len(&self) -> usize {
///         self.0.len()
///     }
///     fn run(&mut self, emit: &mut dyn FnMut(String, Pixels) -> bool, skip: &mut dyn FnMut(Skipped), _: &AtomicBool) -> haidef_wsi::Result<()> {
///         for (name, rgb) in self.0.drain(..) {
///             if rgb.is_empty() {
///                 skip(Skipped { path: name, error: "no pixels".into() });
///             } else if !emit(name, Pixels(rgb)) {
///                 break;
///             }
///         }
///         Ok(())
///     }
/// }
///
/// /// The modality: its source, its key column `name`, nothing after.
/// struct InMemory(Vec<(String, Vec<u8>)>);
/// impl Modality for InMemory {
///     type Source = Named;
///     type Report = ();
///     const LAYOUT: OutputLayout = OutputLayout::File;
///     const DEFAULT_BATCH_SIZE: usize = 8;
///     fn open(&mut self, _: Opening<'_>) -> haidef_wsi::Result<Opened<Named>> {
///         Ok(Opened { source: Named(std::mem::take(&mut self.0)), keys: vec![Field::new("name", DataType::Utf8, false)] })
///     }
///     fn key_columns(&self, keys: &[String]) -> Vec<ArrayRef> {
///         vec![Arc::new(StringArray::from_iter_values(keys))]
///     }
///     fn finish(&mut self, _: Named, _: &mut Finishing<'_, String>) -> haidef_wsi::Result<()> {
///         Ok(())
///     }
/// }
///
/// let model = path_foundation::untrained(&Device::Cpu, DType::F32)?;
/// let images = vec![("white".to_string(), vec![255; 224 * 224 * 3]), ("none".to_string(), vec![]), ("grey".to_string(), vec![128; 224 * 224 * 3])];
/// let out = std::env::temp_dir().join(format!("haidef-modality-doc-{}.parquet", std::process::id()));
/// let summary = Job::of(InMemory(images), &model, &out).run()?;
/// assert_eq!((summary.embedded, summary.skipped.len()), (2, 1));
/// assert_eq!(summary.output(), out.as_path());
/// # std::fs::remove_file(&out).unwrap();
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub trait Modality {
    /// Its inputs, keyed.
    type Source: Source;
    /// What it adds to the [`JobSummary`].
    type Report;
    /// Whether `out` is a file or a folder.
    const LAYOUT: OutputLayout;
    /// Batch size when none is set.
    const DEFAULT_BATCH_SIZE: usize;
    /// Checks the modality against the encoder and the options, adds its metadata, and opens
    /// its source. Nothing has been written yet.
    fn open(&mut self, opening: Opening<'_>) -> Result<Opened<Self::Source>>;
    /// The key columns of a batch, in the order of [`Opened::keys`].
    fn key_columns(&self, keys: &[KeyOf<Self>]) -> Vec<ArrayRef>;
    /// Whether the after-step needs this row's key, embedding and scores kept in memory until
    /// the end (asked of every row as it is written, in file order). None by default.
    fn keeps_row(&self, _key: &KeyOf<Self>) -> bool {
        false
    }
    /// Whether every row will be kept: memory for all of them is then set aside at the start,
    /// rather than grown (which would briefly hold a large slide's embeddings twice).
    fn keeps_all_rows(&self) -> bool {
        false
    }
    /// Runs after the last row is written and before anything is committed: checks on what was
    /// embedded, metadata known only now, pictures. An error here leaves no output.
    fn finish(&mut self, source: Self::Source, finishing: &mut Finishing<'_, KeyOf<Self>>) -> Result<Self::Report>;
    /// For [`OutputLayout::Folder`] jobs: whether a file of the output folder is a previous
    /// run's picture, replaced by this run's.
    fn is_previous_picture(&self, _name: &str) -> bool {
        false
    }
}

/// What a job did. The modality's own figures ([`Modality::Report`]) are its field `details`,
/// also reachable directly (`summary.patches_total` for a slide).
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct JobSummary<R> {
    /// Rows written (patches, images, windows).
    pub embedded: usize,
    /// Inputs skipped, with their errors (files that cannot be used).
    pub skipped: Vec<Skipped>,
    /// Files written: the Parquet file first, then the pictures.
    pub outputs: Vec<PathBuf>,
    /// Wall time of the whole job.
    pub seconds: f64,
    /// Busy time per stage.
    pub stages: StageTimes,
    /// Whether the model had real weights.
    pub trained: bool,
    /// What the modality reports.
    pub details: R,
}

impl<R> JobSummary<R> {
    /// The Parquet file written.
    pub fn output(&self) -> &Path {
        &self.outputs[0]
    }

    /// Rows embedded per second of wall time.
    pub fn per_second(&self) -> f64 {
        self.embedded as f64 / self.seconds.max(1e-9)
    }
}

impl<R> std::ops::Deref for JobSummary<R> {
    type Target = R;
    fn deref(&self) -> &R {
        &self.details
    }
}

/// A job: a modality's inputs embedded by `encoder` into Parquet, set up step by step and then
/// run. Each modality has its constructor ([`crate::SlideJob::new`], [`crate::ImageJob::new`],
/// [`crate::AudioJob::new`]) and its own options; everything here is shared.
pub struct Job<'a, M> {
    modality: M,
    encoder: &'a dyn Encoder,
    out: PathBuf,
    batch_size: Option<usize>,
    queue_depth: usize,
    model_name: Option<String>,
    prompts: Vec<String>,
    metadata: Vec<(String, String)>,
    cancel: Option<&'a AtomicBool>,
    progress: Option<&'a (dyn Fn(usize, usize) + Sync)>,
    on_skip: Option<&'a (dyn Fn(&Skipped) + Sync)>,
}

impl<'a, M: Modality> Job<'a, M> {
    /// `modality`'s inputs embedded by `encoder` into `out` (a file or a folder, as the modality
    /// says).
    pub fn of(modality: M, encoder: &'a dyn Encoder, out: impl AsRef<Path>) -> Self {
        Job {
            modality,
            encoder,
            out: out.as_ref().to_path_buf(),
            batch_size: None,
            queue_depth: 4,
            model_name: None,
            prompts: Vec::new(),
            metadata: Vec::new(),
            cancel: None,
            progress: None,
            on_skip: None,
        }
    }

    /// Inputs per encoder batch (default: the modality's, e.g. 32 patches or 8 images).
    pub fn batch_size(mut self, n: usize) -> Self {
        self.batch_size = Some(n);
        self
    }

    /// Batches in flight between two stages (default 4).
    pub fn queue_depth(mut self, n: usize) -> Self {
        self.queue_depth = n;
        self
    }

    /// The name the model was chosen by (e.g. the registry's), recorded as `model` in the
    /// file's metadata.
    pub fn model_name(mut self, name: impl Into<String>) -> Self {
        self.model_name = Some(name.into());
        self
    }

    /// Zero-shot prompts (models with a text side, e.g. MedSigLIP): each adds a Float32 score
    /// column named after it (see the README's "Zero-shot scores").
    pub fn prompts(mut self, prompts: Vec<String>) -> Self {
        self.prompts = prompts;
        self
    }

    /// Adds a key-value pair to the Parquet file's metadata (e.g. the slide's label).
    pub fn metadata(mut self, key: impl Into<String>, value: impl Into<String>) -> Self {
        self.metadata.push((key.into(), value.into()));
        self
    }

    /// A flag that stops the job promptly when set (nothing is left half-written).
    pub fn cancel(mut self, flag: &'a AtomicBool) -> Self {
        self.cancel = Some(flag);
        self
    }

    /// Called with (rows written, rows expected) after each batch is written.
    pub fn progress(mut self, progress: &'a (dyn Fn(usize, usize) + Sync)) -> Self {
        self.progress = Some(progress);
        self
    }

    /// Called with each input that is skipped, and why, as it happens.
    pub fn on_skip(mut self, on_skip: &'a (dyn Fn(&Skipped) + Sync)) -> Self {
        self.on_skip = Some(on_skip);
        self
    }

    /// The modality, to set its own options.
    pub(crate) fn modality_mut(&mut self) -> &mut M {
        &mut self.modality
    }

    /// Runs the job.
    pub fn run(self) -> Result<JobSummary<M::Report>> {
        let start = Instant::now();
        let batch_size = self.batch_size.unwrap_or(M::DEFAULT_BATCH_SIZE);
        if batch_size == 0 || self.queue_depth == 0 {
            return Err(PipelineError::Options("batch size and queue depth must be at least 1".into()));
        }
        match M::LAYOUT {
            OutputLayout::File => self.run_into(None, start, batch_size),
            OutputLayout::Folder => {
                // Everything is written into a staging folder and moved into `out` at the end;
                // errors name the file as it would have been in `out`.
                let staging = Staging::new(&self.out)?;
                let work = staging.dir().to_path_buf();
                let out = self.out.clone();
                self.run_into(Some(staging), start, batch_size).map_err(|e| e.relocated(&work, &out))
            }
        }
    }

    fn run_into(mut self, staging: Option<Staging>, start: Instant, batch_size: usize) -> Result<JobSummary<M::Report>> {
        let encoder = self.encoder;
        let never = AtomicBool::new(false);
        let reporting =
            Reporting { cancel: self.cancel.unwrap_or(&never), progress: self.progress.unwrap_or(&|_, _| {}), on_skip: self.on_skip.unwrap_or(&|_| {}) };
        let mut meta = provenance(encoder);
        if let Some(name) = &self.model_name {
            meta.insert("model".to_string(), name.clone());
        }
        let Opened { mut source, keys } = self.modality.open(Opening { encoder, metadata: &mut meta, batch_size })?;
        let prompts = if self.prompts.is_empty() {
            None
        } else {
            let taken: Vec<&str> = keys.iter().map(|f| f.name().as_str()).chain(["embedding"]).collect();
            let p = Prompts::new(encoder, &self.prompts, &taken)?;
            p.describe_in(&mut meta);
            Some(p)
        };
        meta.extend(self.metadata.iter().cloned());
        let mut fields = keys;
        fields.extend(self.prompts.iter().map(|t| Field::new(t, DataType::Float32, false)));
        let parquet_path = match &staging {
            Some(s) => s.dir().join("embeddings.parquet"),
            None => self.out.clone(),
        };
        let dim = encoder.embedding_dim();
        let parquet = ParquetSink::create(&parquet_path, fields, &encoder.output().shape(), meta)?;
        let expected = if self.modality.keeps_all_rows() { source.len() } else { 0 };
        let mut sink = JobSink {
            modality: &self.modality,
            parquet,
            prompts: prompts.as_ref(),
            dim,
            keys: Vec::with_capacity(expected),
            embeddings: Vec::with_capacity(expected * dim),
            scores: vec![Vec::with_capacity(expected); self.prompts.len()],
        };
        let engine_opts = EngineOptions { batch_size, queue_depth: self.queue_depth };
        let report = engine::run(&mut source, encoder, &mut sink, engine_opts, &reporting)?;
        let JobSink { mut parquet, keys, embeddings, scores, .. } = sink;
        let mut finishing = Finishing {
            encoder,
            rows: report.rows,
            keys: &keys,
            embeddings: &embeddings,
            dim,
            prompts: &self.prompts,
            scores: &scores,
            skipped: &report.skipped,
            staging: staging.as_ref().map(Staging::dir),
            metadata: Vec::new(),
            pictures: Vec::new(),
        };
        let details = self.modality.finish(source, &mut finishing)?;
        for (k, v) in &finishing.metadata {
            parquet.append_metadata(k, v);
        }
        let pictures = finishing.pictures;
        let parquet_path = parquet.finish()?;
        let outputs = match staging {
            Some(staging) => {
                let modality = &self.modality;
                staging.publish(&parquet_path, &pictures, &|name| modality.is_previous_picture(name))?
            }
            None => std::iter::once(parquet_path).chain(pictures).collect(),
        };
        Ok(JobSummary {
            embedded: report.rows,
            skipped: report.skipped,
            outputs,
            seconds: start.elapsed().as_secs_f64(),
            stages: report.stages,
            trained: encoder.is_trained(),
            details,
        })
    }
}

/// The runner's sink: Parquet rows with their score columns, and the rows the after-step
/// asks to keep.
struct JobSink<'s, M: Modality> {
    modality: &'s M,
    parquet: ParquetSink,
    prompts: Option<&'s Prompts>,
    dim: usize,
    keys: Vec<KeyOf<M>>,
    embeddings: Vec<f32>,
    /// Per prompt, the score of every row kept.
    scores: Vec<Vec<f32>>,
}

impl<M: Modality> Sink<KeyOf<M>> for JobSink<'_, M> {
    fn write(&mut self, keys: Vec<KeyOf<M>>, embeddings: &[f32]) -> Result<()> {
        let mut columns = self.modality.key_columns(&keys);
        let scores = self.prompts.map(|p| p.score(embeddings, self.dim)).unwrap_or_default();
        columns.extend(scores.iter().map(|s| Arc::new(Float32Array::from(s.clone())) as ArrayRef));
        self.parquet.write(columns, embeddings)?;
        for (i, key) in keys.into_iter().enumerate() {
            if self.modality.keeps_row(&key) {
                for (all, prompt) in self.scores.iter_mut().zip(&scores) {
                    all.push(prompt[i]);
                }
                self.embeddings.extend_from_slice(&embeddings[i * self.dim..(i + 1) * self.dim]);
                self.keys.push(key);
            }
        }
        Ok(())
    }
}
