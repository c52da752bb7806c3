//! The jobs from Python: `embed_slide`, `embed_images` and `embed_audio` run the library's
//! jobs (those of the `slide_heatmap`, `embed_images` and `embed_audio` examples, the same
//! Parquet) on a thread of their own while the calling thread shows progress and watches for
//! Ctrl-C, which stops the job cleanly.

use crate::encoder::Encoder;
use crate::errors::library;
use crate::slide::Slide;
use arrow_array::RecordBatch;
use arrow_pyarrow::{IntoPyArrow, Table};
use haidef_wsi::{find_audio, find_images, AudioJob, AudioOptions, ImageJob, ImageOptions, Job, JobSummary, Modality, Skipped};
use haidef_wsi::{LevelChoice, PipelineOptions, SlideJob, DEFAULT_MAX_PIXELS, DEFAULT_MAX_SECONDS};
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use pyo3::exceptions::{PyImportError, PyValueError};
use pyo3::prelude::*;
use pyo3::types::{PyDict, PyList};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{mpsc, Arc, Mutex};
use std::time::Duration;

/// How progress is shown: nothing, a tqdm bar, or the caller's function of (done, total).
enum Progress<'py> {
    Silent,
    Bar(Bound<'py, PyAny>),
    Call(Bound<'py, PyAny>),
}

impl<'py> Progress<'py> {
    /// `progress` as given: None (the default) or true shows a bar, false nothing, a function
    /// is called.
    fn new(py: Python<'py>, progress: Option<&Bound<'py, PyAny>>, what: &str, unit: &str) -> PyResult<Self> {
        match progress {
            Some(f) if f.is_callable() => return Ok(Progress::Call(f.clone())),
            Some(flag) if !flag.is_truthy()? => return Ok(Progress::Silent),
            _ => {}
        }
        // tqdm when it is installed; silence otherwise (no dependency for a progress bar).
        match py.import("tqdm.auto").and_then(|m| m.getattr("tqdm")) {
            Ok(tqdm) => {
                let kwargs = PyDict::new(py);
                kwargs.set_item("total", 0)?;
                kwargs.set_item("unit", unit)?;
                kwargs.set_item("desc", what)?;
                Ok(Progress::Bar(tqdm.call((), Some(&kwargs))?))
            }
            Err(_) => Ok(Progress::Silent),
        }
    }

    fn show(&self, done: usize, total: usize) -> PyResult<()> {
        match self {
            Progress::Silent => Ok(()),
            Progress::Call(f) => f.call1((done, total)).map(|_| ()),
            Progress::Bar(bar) => {
                bar.setattr("total", total)?;
                bar.setattr("n", done)?;
                bar.call_method0("refresh").map(|_| ())
            }
        }
    }

    fn close(&self) -> PyResult<()> {
        match self {
            Progress::Bar(bar) => bar.call_method0("close").map(|_| ()),
            _ => Ok(()),
        }
    }
}

/// What the job's thread tells the calling thread.
enum Event {
    Progress(usize, usize),
    Skipped,
}

/// Runs `job` in batches of `encoder`'s size (or `batch_size`) on a thread of its own, showing
/// its progress (in `unit`s; files skipped count as done when `skips_count`) and stopping it on
/// Ctrl-C, which then raises KeyboardInterrupt.
#[allow(clippy::too_many_arguments)]
fn run_job<'py, M>(
    py: Python<'py>,
    job: Job<'_, M>,
    encoder: &Encoder,
    batch_size: Option<usize>,
    progress: Option<&Bound<'py, PyAny>>,
    what: &str,
    unit: &str,
    skips_count: bool,
) -> PyResult<JobSummary<M::Report>>
where
    M: Modality + Send,
    M::Report: Send,
{
    if crate::pool::forked() {
        // The job's own threads use rayon's global pool, which a forked process has without its
        // threads: it would wait forever.
        return Err(library(format!("{what} cannot run in a process forked from the one that imported haidef_wsi (a DataLoader worker started by fork): use the \"spawn\" start method, or run the job in the main process")));
    }
    let job = job.batch_size(batch_size.unwrap_or(encoder.batch_size()));
    let shown = Progress::new(py, progress, what, unit)?;
    let cancel = AtomicBool::new(false);
    let (tx, rx) = mpsc::channel::<Event>();
    let rx = Mutex::new(rx);
    let outcome = std::thread::scope(|scope| -> PyResult<_> {
        let worker = scope.spawn(|| {
            let skip_tx = tx.clone();
            let send = move |done: usize, total: usize| {
                let _ = tx.send(Event::Progress(done, total));
            };
            let skipped = move |_: &Skipped| {
                let _ = skip_tx.send(Event::Skipped);
            };
            job.cancel(&cancel).progress(&send).on_skip(&skipped).run()
        });
        let (mut done, mut total, mut skips) = (0usize, 0usize, 0usize);
        loop {
            let events: Vec<Event> = py.detach(|| {
                let rx = rx.lock().unwrap_or_else(|e| e.into_inner());
                rx.recv_timeout(Duration::from_millis(100)).ok().into_iter().chain(rx.try_iter()).collect()
            });
            let fresh = !events.is_empty();
            for e in events {
                match e {
                    Event::Progress(d, t) => (done, total) = (d, t),
                    Event::Skipped => skips += 1,
                }
            }
            let counted = if skips_count { done + skips } else { done };
            let interrupted = py.check_signals().and_then(|()| if fresh { shown.show(counted, total.max(counted)) } else { Ok(()) });
            if let Err(e) = interrupted {
                cancel.store(true, Ordering::Relaxed);
                let _ = py.detach(|| worker.join());
                let _ = shown.close();
                return Err(e);
            }
            if worker.is_finished() {
                break;
            }
        }
        py.detach(|| worker.join()).map_err(|_| library(format!("the {what} job's thread panicked")))
    });
    shown.close()?;
    outcome?.map_err(library)
}

/// The summary every job returns, as a dict (the modalities add their own entries).
fn summary<'py, R>(py: Python<'py>, s: &JobSummary<R>) -> PyResult<Bound<'py, PyDict>> {
    let d = PyDict::new(py);
    d.set_item("parquet", s.output().to_path_buf())?;
    d.set_item("outputs", s.outputs.clone())?;
    d.set_item("embedded", s.embedded)?;
    let skipped = PyList::empty(py);
    for k in &s.skipped {
        let e = PyDict::new(py);
        e.set_item("path", &k.path)?;
        e.set_item("error", &k.error)?;
        skipped.append(e)?;
    }
    d.set_item("skipped", skipped)?;
    d.set_item("seconds", s.seconds)?;
    d.set_item("trained", s.trained)?;
    Ok(d)
}

/// The job's Parquet file as a `pyarrow.Table`, when `table` was asked for; the summary
/// otherwise. The file is read here (the GIL released) and its batches handed to pyarrow
/// through Arrow's C data interface, without a copy; the metadata written at the end of the
/// file (rows embedded, failed_files) joins the schema's.
fn result<'py>(py: Python<'py>, summary: Bound<'py, PyDict>, parquet: PathBuf, table: bool) -> PyResult<Bound<'py, PyAny>> {
    if !table {
        return Ok(summary.into_any());
    }
    if py.import("pyarrow").is_err() {
        return Err(PyImportError::new_err("table=True needs pyarrow (pip install pyarrow, or the package's [tables] extra)"));
    }
    let read = py.detach(|| -> Result<Table, String> {
        let fail = |e: &dyn std::fmt::Display| format!("{}: reading the job's output back: {e}", parquet.display());
        let file = std::fs::File::open(&parquet).map_err(|e| fail(&e))?;
        let builder = ParquetRecordBatchReaderBuilder::try_new(file).map_err(|e| fail(&e))?;
        let mut metadata = builder.schema().metadata().clone();
        for kv in builder.metadata().file_metadata().key_value_metadata().into_iter().flatten() {
            if kv.key != "ARROW:schema" {
                metadata.insert(kv.key.clone(), kv.value.clone().unwrap_or_default());
            }
        }
        let schema = Arc::new(builder.schema().as_ref().clone().with_metadata(metadata));
        let batches = builder
            .build()
            .map_err(|e| fail(&e))?
            .map(|b| b.and_then(|b| b.with_schema(schema.clone())).map_err(|e| fail(&e)))
            .collect::<Result<Vec<RecordBatch>, String>>()?;
        Table::try_new(batches, schema).map_err(|e| fail(&e))
    });
    read.map_err(library)?.into_pyarrow(py)
}

/// `inputs` as paths: one path or a list of them.
fn paths(inputs: &Bound<'_, PyAny>) -> PyResult<Vec<PathBuf>> {
    if let Ok(one) = inputs.extract::<PathBuf>() {
        return Ok(vec![one]);
    }
    inputs.extract::<Vec<PathBuf>>().map_err(|_| {
        pyo3::exceptions::PyTypeError::new_err(format!(
            "inputs must be a path or a list of paths (files or folders); got a {}",
            inputs.get_type().name().map(|n| n.to_string()).unwrap_or_default()
        ))
    })
}

/// Embeds the tissue patches of `slide` with `encoder` into the folder `out`, as the
/// `slide_heatmap` example does: `embeddings.parquet` (one row per patch: slide_id, level, mpp,
/// x, y, width, height, tissue_fraction, embedding, cluster) and the k-means `heatmap.png` and
/// `clusters.png`. The level is `level` by index or the one nearest `mpp` µm/px (default 1.0);
/// patches with at least `min_tissue` tissue are embedded (all with `all_patches`). `prompts`
/// (image-text models) add a score column and picture each. `icc_to_srgb` converts the
/// slide's colours to sRGB through its ICC profile first; `skip_unreadable_frames` leaves out
/// the patches over frames that cannot be decoded (listed in the summary's `unreadable`)
/// instead of failing the job. `progress`: True (the default)
/// shows a tqdm bar when tqdm is installed, False nothing, a function is called with (done,
/// total). Ctrl-C stops the job (nothing half-written is left) and raises KeyboardInterrupt.
/// Returns what was done, as a dict, or with `table=True` the Parquet file as a pyarrow.Table.
#[pyfunction]
#[pyo3(signature = (slide, out, encoder, *, level = None, mpp = None, min_tissue = 0.5, all_patches = false, k = 6, seed = 0, prompts = None, icc_to_srgb = false, skip_unreadable_frames = false, batch_size = None, progress = None, table = false))]
#[allow(clippy::too_many_arguments)]
pub fn embed_slide<'py>(
    py: Python<'py>,
    slide: &Slide,
    out: PathBuf,
    encoder: &Encoder,
    level: Option<usize>,
    mpp: Option<f64>,
    min_tissue: f32,
    all_patches: bool,
    k: usize,
    seed: u64,
    prompts: Option<Vec<String>>,
    icc_to_srgb: bool,
    skip_unreadable_frames: bool,
    batch_size: Option<usize>,
    progress: Option<Bound<'py, PyAny>>,
    table: bool,
) -> PyResult<Bound<'py, PyAny>> {
    let mut opts = PipelineOptions::default();
    opts.level = match (level, mpp) {
        (Some(_), Some(_)) => return Err(PyValueError::new_err("give level or mpp, not both")),
        (Some(i), None) => LevelChoice::Index(i),
        (None, Some(m)) if m.is_finite() && m > 0.0 => LevelChoice::Mpp(m),
        (None, Some(m)) => return Err(PyValueError::new_err(format!("mpp must be a positive number of micrometres per pixel, not {m}"))),
        (None, None) => opts.level,
    };
    if !(0.0..=1.0).contains(&min_tissue) {
        return Err(PyValueError::new_err(format!("min_tissue is a fraction between 0 and 1, not {min_tissue}")));
    }
    let opts = opts
        .min_tissue(min_tissue)
        .all_patches(all_patches)
        .k(k)
        .seed(seed)
        .prompts(prompts.unwrap_or_default())
        .icc_to_srgb(icc_to_srgb)
        .skip_unreadable_frames(skip_unreadable_frames);
    let wsi = slide.inner()?;
    let job = SlideJob::new(&wsi, encoder.model(), &out).options(opts);
    let s = run_job(py, job, encoder, batch_size, progress.as_ref(), "embed_slide", "patch", false)?;
    let d = summary(py, &s)?;
    d.set_item("patches_total", s.patches_total)?;
    d.set_item("patches_skipped", s.patches_skipped)?;
    d.set_item("slide_id", s.slide_id.clone())?;
    d.set_item("level", s.level)?;
    d.set_item("mpp", s.mpp)?;
    d.set_item("tissue_coverage", s.tissue_coverage)?;
    let unreadable = PyList::empty(py);
    for u in &s.unreadable {
        let e = PyDict::new(py);
        e.set_item("x", u.x)?;
        e.set_item("y", u.y)?;
        e.set_item("error", &u.error)?;
        unreadable.append(e)?;
    }
    d.set_item("unreadable", unreadable)?;
    d.set_item("color_transform", &s.color_transform)?;
    result(py, d, s.output().to_path_buf(), table)
}

/// Embeds image files (PNG, JPEG; `inputs` is a path or a list of paths, folders searched)
/// with `encoder` into the Parquet file `out`, one row per image, as the `embed_images` example
/// does. Files that cannot be used are skipped and listed (in the summary's `skipped` and the
/// file's metadata); images over `max_pixels` are refused. `prompts` (image-text models) add a
/// score column each. `progress` and Ctrl-C as for `embed_slide`. Returns the summary dict, or
/// with `table=True` the Parquet file as a pyarrow.Table.
#[pyfunction]
#[pyo3(signature = (inputs, out, encoder, *, prompts = None, max_pixels = DEFAULT_MAX_PIXELS, batch_size = None, progress = None, table = false))]
#[allow(clippy::too_many_arguments)]
pub fn embed_images<'py>(
    py: Python<'py>,
    inputs: &Bound<'py, PyAny>,
    out: PathBuf,
    encoder: &Encoder,
    prompts: Option<Vec<String>>,
    max_pixels: u64,
    batch_size: Option<usize>,
    progress: Option<Bound<'py, PyAny>>,
    table: bool,
) -> PyResult<Bound<'py, PyAny>> {
    let files = find_images(&paths(inputs)?).map_err(library)?;
    if files.is_empty() {
        return Err(library("no PNG or JPEG files found in the paths given"));
    }
    let opts = ImageOptions::default().max_pixels(max_pixels);
    let job = ImageJob::new(files, encoder.model(), &out).model_name(encoder.registry_name()).prompts(prompts.unwrap_or_default()).options(opts);
    let s = run_job(py, job, encoder, batch_size, progress.as_ref(), "embed_images", "image", true)?;
    let d = summary(py, &s)?;
    result(py, d, s.output().to_path_buf(), table)
}

/// Embeds audio recordings (WAV, FLAC, Ogg Vorbis, MP3; `inputs` is a path or a list of paths,
/// folders searched) with an audio `encoder` (hear) into the Parquet file `out`, as the
/// `embed_audio` example does: each recording mixed to mono, resampled to the model's rate and
/// cut into clips every `hop` seconds, one row per window (path, start_s, end_s, padded,
/// embedding). Recordings longer than `max_seconds` are refused; `picture` also draws the first
/// recording's spectrogram and its windows' similarity into that PNG. `progress` and Ctrl-C as
/// for `embed_slide`. Returns the summary dict, or with `table=True` the Parquet file as a
/// pyarrow.Table.
#[pyfunction]
#[pyo3(signature = (inputs, out, encoder, *, hop = 1.0, max_seconds = DEFAULT_MAX_SECONDS, picture = None, batch_size = None, progress = None, table = false))]
#[allow(clippy::too_many_arguments)]
pub fn embed_audio<'py>(
    py: Python<'py>,
    inputs: &Bound<'py, PyAny>,
    out: PathBuf,
    encoder: &Encoder,
    hop: f64,
    max_seconds: f64,
    picture: Option<PathBuf>,
    batch_size: Option<usize>,
    progress: Option<Bound<'py, PyAny>>,
    table: bool,
) -> PyResult<Bound<'py, PyAny>> {
    let files = find_audio(&paths(inputs)?).map_err(library)?;
    if files.is_empty() {
        return Err(library("no audio files (wav, flac, ogg, mp3) found in the paths given"));
    }
    let opts = AudioOptions::default().hop_seconds(hop).max_seconds(max_seconds);
    let job = AudioJob::new(files, encoder.model(), &out).model_name(encoder.registry_name()).options(opts);
    let job = match &picture {
        Some(p) => job.picture(p),
        None => job,
    };
    let s = run_job(py, job, encoder, batch_size, progress.as_ref(), "embed_audio", "window", false)?;
    let d = summary(py, &s)?;
    d.set_item("picture", s.picture.clone())?;
    result(py, d, s.output().to_path_buf(), table)
}
