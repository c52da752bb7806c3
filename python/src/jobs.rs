//! The jobs from Python: `embed_slide` runs the library's slide job (the `slide_heatmap`
//! example's: tissue patches → encoder → Parquet → k-means heatmap) with a progress bar and
//! Ctrl-C that stops it cleanly.

use crate::encoder::Encoder;
use crate::errors::library;
use crate::slide::Slide;
use haidef_wsi::{LevelChoice, PipelineOptions, SlideJob};
use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;
use pyo3::types::PyDict;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{mpsc, Mutex};
use std::time::Duration;

/// How progress is shown: nothing, a tqdm bar, or the caller's function of (done, total).
enum Progress<'py> {
    Silent,
    Bar(Bound<'py, PyAny>),
    Call(Bound<'py, PyAny>),
}

impl<'py> Progress<'py> {
    fn new(py: Python<'py>, progress: &Bound<'py, PyAny>, what: &str) -> PyResult<Self> {
        if progress.is_callable() {
            return Ok(Progress::Call(progress.clone()));
        }
        if !progress.is_truthy()? {
            return Ok(Progress::Silent);
        }
        // tqdm when it is installed; silence otherwise (no dependency for a progress bar).
        match py.import("tqdm.auto").and_then(|m| m.getattr("tqdm")) {
            Ok(tqdm) => {
                let kwargs = PyDict::new(py);
                kwargs.set_item("total", 0)?;
                kwargs.set_item("unit", "patch")?;
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

/// Embeds the tissue patches of `slide` with `encoder` into the folder `out`, as the
/// `slide_heatmap` example does: `embeddings.parquet` (one row per patch: slide_id, level, mpp,
/// x, y, width, height, tissue_fraction, embedding, cluster) and the k-means `heatmap.png` and
/// `clusters.png`. The level is `level` by index or the one nearest `mpp` µm/px (default 1.0);
/// patches with at least `min_tissue` tissue are embedded (all with `all_patches`). `progress`:
/// True shows a tqdm bar when tqdm is installed, False nothing, a function is called with
/// (done, total). Ctrl-C stops the job (nothing half-written is left) and raises
/// KeyboardInterrupt. Returns what was done, as a dict.
#[pyfunction]
#[pyo3(signature = (slide, out, encoder, *, level = None, mpp = None, min_tissue = 0.5, all_patches = false, k = 6, seed = 0, batch_size = None, progress = None))]
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
    batch_size: Option<usize>,
    progress: Option<Bound<'py, PyAny>>,
) -> PyResult<Bound<'py, PyDict>> {
    if crate::pool::forked() {
        // The job's own threads use rayon's global pool, which a forked process has without its
        // threads: it would wait forever.
        return Err(library("embed_slide cannot run in a process forked from the one that imported haidef_wsi (a DataLoader worker started by fork): use the \"spawn\" start method, or run the job in the main process"));
    }
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
    opts.min_tissue = min_tissue;
    opts.all_patches = all_patches;
    opts.k = k;
    opts.seed = seed;
    let batch = batch_size.unwrap_or(encoder.batch_size());
    let shown = match &progress {
        Some(p) => Progress::new(py, p, "embed_slide")?,
        None => Progress::new(py, pyo3::types::PyBool::new(py, true).as_any(), "embed_slide")?,
    };
    let cancel = AtomicBool::new(false);
    let (tx, rx) = mpsc::channel::<(usize, usize)>();
    let rx = Mutex::new(rx);
    let (wsi, model) = (slide.inner(), encoder.model());
    let outcome = std::thread::scope(|scope| -> PyResult<_> {
        let job = scope.spawn(|| {
            let send = move |done: usize, total: usize| {
                let _ = tx.send((done, total));
            };
            SlideJob::new(wsi, model, &out).options(opts).batch_size(batch).cancel(&cancel).progress(&send).run()
        });
        loop {
            let latest = py.detach(|| {
                let rx = rx.lock().unwrap_or_else(|e| e.into_inner());
                let mut latest = rx.recv_timeout(Duration::from_millis(100)).ok();
                while let Ok(p) = rx.try_recv() {
                    latest = Some(p);
                }
                latest
            });
            let interrupted = py.check_signals().and_then(|()| latest.map_or(Ok(()), |(d, t)| shown.show(d, t)));
            if let Err(e) = interrupted {
                cancel.store(true, Ordering::Relaxed);
                let _ = py.detach(|| job.join());
                let _ = shown.close();
                return Err(e);
            }
            if job.is_finished() {
                break;
            }
        }
        let result = py.detach(|| job.join()).map_err(|_| library("the slide job's thread panicked"))?;
        Ok(result)
    });
    shown.close()?;
    let summary = outcome?.map_err(library)?;
    let d = PyDict::new(py);
    d.set_item("parquet", summary.output().to_path_buf())?;
    d.set_item("outputs", summary.outputs.clone())?;
    d.set_item("embedded", summary.embedded)?;
    d.set_item("patches_total", summary.patches_total)?;
    d.set_item("patches_skipped", summary.patches_skipped)?;
    d.set_item("slide_id", summary.slide_id.clone())?;
    d.set_item("level", summary.level)?;
    d.set_item("mpp", summary.mpp)?;
    d.set_item("tissue_coverage", summary.tissue_coverage)?;
    d.set_item("seconds", summary.seconds)?;
    d.set_item("trained", summary.trained)?;
    Ok(d)
}
