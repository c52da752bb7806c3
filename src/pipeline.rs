//! The slide job: slide → tissue mask → the slide source (patch grid, parallel decode) → the
//! engine (batching, encoder) → the Parquet sink, then the after-step (k-means and the
//! heatmaps). The stages and their threads are [`crate::engine`]'s.

#[cfg(feature = "heatmaps")]
use crate::cluster_maps::{cluster_and_draw, Layout};
#[cfg(feature = "icc")]
use crate::color::ToSrgb;
use crate::engine::{self, EngineOptions, Sink};
use crate::atomic::Staging;
use crate::error::{PipelineError, Result};
use crate::sink::{provenance, ParquetSink, PatchRecord};
use crate::slide_source::{SlidePatches, UnreadablePatch};
use crate::zero_shot::Prompts;
use crate::tissue::{mask_level, TissueMask};
use haidef_wsi_dicom::{Level, PatchGridOptions, Slide};
use haidef_wsi_encoders::Encoder;
use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicBool;
use std::time::Instant;

pub use crate::engine::StageTimes;

/// Which level to embed.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum LevelChoice {
    /// A pyramid level by index (0 = full resolution).
    Index(usize),
    /// The level nearest this many µm per pixel (it must be within a factor 2).
    Mpp(f64),
}

/// How a run is set up. `Default` embeds tissue patches (≥ 50% tissue) of the level nearest
/// 1 µm/px (~10×) in batches of 32 and makes 6 clusters with seed 0.
#[derive(Debug, Clone)]
pub struct PipelineOptions {
    /// Level to embed.
    pub level: LevelChoice,
    /// Keep patches whose tissue fraction is at least this.
    pub min_tissue: f32,
    /// Embed every patch, skipping tissue detection.
    pub all_patches: bool,
    /// Patches per encoder batch.
    pub batch_size: usize,
    /// k-means clusters (the after-step runs with the `heatmaps` feature).
    pub k: usize,
    /// k-means seed.
    pub seed: u64,
    /// Batches in flight between two stages.
    pub queue_depth: usize,
    /// Convert patches from the slide's ICC profile to sRGB before embedding (no-op, and said
    /// so in the metadata, when the slide has no profile). Needs the `icc` feature.
    pub icc_to_srgb: bool,
    /// Zero-shot prompts (models with a text side, e.g. MedSigLIP): each adds a score column
    /// named after it and, with the `heatmaps` feature, a `score-<n>-<prompt>.png` picture.
    pub prompts: Vec<String>,
    /// Leave out the patches over a broken frame (one that does not decode, or that the file
    /// ends inside; listed in
    /// [`RunSummary::unreadable`] and in the Parquet metadata under `unreadable_patches`)
    /// instead of stopping. Off by default: a slide with a broken frame is usually a broken
    /// copy that should be fixed, and fewer rows than expected must never pass unnoticed.
    /// Other read errors (a failing disk, a server that stops answering) still stop the run, and
    /// so does a broken frame in the low-resolution level read for the tissue mask.
    pub skip_unreadable_frames: bool,
}

impl Default for PipelineOptions {
    fn default() -> Self {
        PipelineOptions {
            level: LevelChoice::Mpp(1.0),
            min_tissue: 0.5,
            all_patches: false,
            batch_size: 32,
            k: 6,
            seed: 0,
            queue_depth: 4,
            icc_to_srgb: false,
            prompts: Vec::new(),
            skip_unreadable_frames: false,
        }
    }
}

/// What a run did.
#[derive(Debug, Clone)]
pub struct RunSummary {
    /// The slide's id in the output: its SeriesInstanceUID unless [`SlideJob::slide_id`] set one.
    pub slide_id: String,
    /// Level embedded.
    pub level: usize,
    /// Its µm/px, if known.
    pub mpp: Option<f64>,
    /// Patches in the level's grid.
    pub patches_total: usize,
    /// Patches embedded.
    pub patches_embedded: usize,
    /// Patches skipped for too little tissue.
    pub patches_skipped: usize,
    /// Patches left out because a frame under them cannot be read (only with
    /// [`PipelineOptions::skip_unreadable_frames`]), in grid order.
    pub unreadable: Vec<UnreadablePatch>,
    /// Fraction of the mask level covered by tissue.
    pub tissue_coverage: f64,
    /// Wall time of the whole run.
    pub seconds: f64,
    /// Busy time per stage.
    pub stages: StageTimes,
    /// Cluster of each embedded patch, in file order (empty without the `heatmaps` feature).
    pub labels: Vec<usize>,
    /// Files written: embeddings.parquet, then (with the `heatmaps` feature) heatmap.png and
    /// clusters.png.
    pub outputs: Vec<PathBuf>,
    /// Whether the model had real weights.
    pub trained: bool,
    /// Colour transform applied before embedding, in words.
    pub color_transform: String,
}

impl RunSummary {
    /// Embedded patches per second of wall time.
    pub fn patches_per_second(&self) -> f64 {
        self.patches_embedded as f64 / self.seconds.max(1e-9)
    }
}

/// Resolves the level to embed, with errors that list what the slide has.
pub fn choose_level(slide: &Slide, choice: LevelChoice) -> Result<&Level> {
    match choice {
        LevelChoice::Index(i) => slide.level(i).map_err(|e| PipelineError::Options(e.to_string())),
        LevelChoice::Mpp(m) => {
            let level = slide.level_for_mpp(m).map_err(|e| PipelineError::Options(format!("{e}; choose a level with --level")))?;
            let have = level.mpp().expect("level_for_mpp only picks levels with a spacing");
            if !(0.5..=2.0).contains(&(have / m)) {
                let span: Vec<String> = slide.levels().iter().filter_map(|l| l.mpp()).map(|v| format!("{v:.3}")).collect();
                return Err(PipelineError::Options(format!(
                    "{m} µm/px is beyond this pyramid (its levels are {} µm/px); choose within a factor 2 of one, or --level",
                    span.join(", ")
                )));
            }
            Ok(level)
        }
    }
}

/// The slide's sink: Parquet rows, and the embeddings and positions kept for k-means.
struct SlideSink<'p> {
    parquet: ParquetSink,
    records: Vec<PatchRecord>,
    embeddings: Vec<f32>,
    dim: usize,
    prompts: Option<&'p Prompts>,
    /// Per prompt, the score of every row written.
    scores: Vec<Vec<f32>>,
}

impl Sink<PatchRecord> for SlideSink<'_> {
    fn write(&mut self, keys: Vec<PatchRecord>, embeddings: &[f32]) -> Result<()> {
        let scores = self.prompts.map(|p| p.score(embeddings, self.dim)).unwrap_or_default();
        self.parquet.write_scored(&keys, embeddings, &scores)?;
        for (all, new) in self.scores.iter_mut().zip(&scores) {
            all.extend_from_slice(new);
        }
        self.embeddings.extend_from_slice(embeddings);
        self.records.extend(keys);
        Ok(())
    }
}

/// The slide job, set up step by step and then run:
///
/// ```no_run
/// # fn main() -> Result<(), Box<dyn std::error::Error>> {
/// use haidef_wsi::{encoders::{candle::{DType, Device}, registry}, wsi::Slide, PipelineOptions, SlideJob};
/// let slide = Slide::open("path/to/slide")?;
/// let model = registry::find("path-foundation")?.untrained(&Device::Cpu, DType::F32)?;
/// let stop = std::sync::atomic::AtomicBool::new(false); // set it from a Ctrl-C handler
/// let summary = SlideJob::new(&slide, model.as_ref(), "out")
///     .options(PipelineOptions { k: 4, ..Default::default() })
///     .cancel(&stop)
///     .progress(&|done, total| eprintln!("{done}/{total}"))
///     .run()?;
/// println!("{} patches embedded", summary.patches_embedded);
/// # Ok(()) }
/// ```
pub struct SlideJob<'a> {
    slide: &'a Slide,
    encoder: &'a dyn Encoder,
    out_dir: PathBuf,
    options: PipelineOptions,
    cancel: Option<&'a AtomicBool>,
    progress: Option<&'a (dyn Fn(usize, usize) + Sync)>,
    slide_id: Option<String>,
    metadata: Vec<(String, String)>,
}

impl<'a> SlideJob<'a> {
    /// Embeds `slide` with `encoder` into `out_dir`, with [`PipelineOptions::default`].
    pub fn new(slide: &'a Slide, encoder: &'a dyn Encoder, out_dir: impl AsRef<Path>) -> Self {
        SlideJob {
            slide,
            encoder,
            out_dir: out_dir.as_ref().to_path_buf(),
            options: PipelineOptions::default(),
            cancel: None,
            progress: None,
            slide_id: None,
            metadata: Vec::new(),
        }
    }

    /// Level, tissue filter, batch size, k-means and colour options.
    pub fn options(mut self, options: PipelineOptions) -> Self {
        self.options = options;
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

    /// The `slide_id` column's value (default: the slide's SeriesInstanceUID), e.g. a cohort
    /// manifest's own id for the slide.
    pub fn slide_id(mut self, id: impl Into<String>) -> Self {
        self.slide_id = Some(id.into());
        self
    }

    /// Adds a key-value pair to the Parquet file's metadata (e.g. the slide's label).
    pub fn metadata(mut self, key: impl Into<String>, value: impl Into<String>) -> Self {
        self.metadata.push((key.into(), value.into()));
        self
    }

    /// Runs the job: Parquet, then k-means and the heatmaps.
    pub fn run(self) -> Result<RunSummary> {
        let never = AtomicBool::new(false);
        let cancel = self.cancel.unwrap_or(&never);
        let progress = self.progress.unwrap_or(&|_, _| {});
        let slide_id = self.slide_id.clone().unwrap_or_else(|| self.slide.series_instance_uid().to_string());
        run(self.slide, self.encoder, &self.out_dir, &self.options, (&slide_id, &self.metadata), cancel, progress)
    }
}

fn run(
    slide: &Slide,
    encoder: &dyn Encoder,
    out_dir: &Path,
    opts: &PipelineOptions,
    (slide_id, extra_meta): (&str, &[(String, String)]),
    cancel: &AtomicBool,
    progress: &(dyn Fn(usize, usize) + Sync),
) -> Result<RunSummary> {
    let start = Instant::now();
    if opts.batch_size == 0 || opts.queue_depth == 0 {
        return Err(PipelineError::Options("batch size and queue depth must be at least 1".into()));
    }
    // k only matters to the after-step (the `heatmaps` feature).
    if opts.k == 0 && cfg!(feature = "heatmaps") {
        return Err(PipelineError::Options("k must be at least 1".into()));
    }
    if opts.icc_to_srgb && !cfg!(feature = "icc") {
        return Err(PipelineError::Options("ICC → sRGB was asked for, but this build of haidef-wsi has no colour management: enable its `icc` feature".into()));
    }
    let level = choose_level(slide, opts.level)?;
    let spec = encoder.input_spec().clone();
    if spec.width != spec.height || spec.channels != 3 {
        return Err(PipelineError::Options(format!("the pipeline embeds square RGB patches; this encoder takes {}", spec.describe())));
    }
    let size = spec.width as u32;
    let prompts = if opts.prompts.is_empty() {
        None
    } else {
        let taken: Vec<String> = crate::sink::slide_fields().iter().map(|f| f.name().clone()).chain(["embedding".to_string()]).collect();
        Some(Prompts::new(encoder, &opts.prompts, &taken.iter().map(String::as_str).collect::<Vec<_>>())?)
    };
    // Everything is written into a staging folder and moved into `out_dir` at the end.
    let staging = Staging::new(out_dir)?;
    let work_dir = staging.dir().to_path_buf();
    // Errors name the file as it would have been in `out_dir` (the staging folder is gone by
    // the time they are read).
    let staged = move || -> Result<RunSummary> {
        let work = staging.dir();

        // Tissue: mask on a low-resolution level, fraction per patch of the chosen level.
        let level0 = &slide.levels()[0];
        let thumb = mask_level(slide).read_all()?;
        let mask = TissueMask::from_image(&thumb, (level0.width(), level0.height()));
        let grid = level.patch_grid(PatchGridOptions { size, stride: size })?;
        let fractions: Vec<f32> = grid
            .positions()
            .map(|(x, y)| mask.fraction((x, y, size, size), (level.width(), level.height()), (level0.width(), level0.height())))
            .collect();
        let keep: Vec<bool> = fractions.iter().map(|f| opts.all_patches || *f >= opts.min_tissue).collect();
        let kept = keep.iter().filter(|k| **k).count();
        if grid.is_empty() {
            return Err(PipelineError::Options(format!(
                "level {} ({}x{}) is smaller than one {size}x{size} patch; choose a finer level",
                level.index(),
                level.width(),
                level.height()
            )));
        }
        if kept == 0 {
            return Err(PipelineError::NoTissue(format!(
                "none of the {} patches of level {} has ≥ {:.0}% tissue (tissue covers {:.1}% of the slide); \
                 lower --min-tissue or pass --all-patches",
                grid.len(),
                level.index(),
                opts.min_tissue * 100.0,
                mask.coverage() * 100.0
            )));
        }
        if opts.k > kept && cfg!(feature = "heatmaps") {
            return Err(PipelineError::Options(format!(
                "k = {} clusters but only {kept} patches will be embedded; lower --k",
                opts.k
            )));
        }

        #[cfg(feature = "icc")]
        let to_srgb = match (opts.icc_to_srgb, &level.info().icc_profile) {
            (true, Some(icc)) => Some(ToSrgb::from_icc(icc)?),
            _ => None,
        };
        #[cfg(feature = "icc")]
        let (transform, color_transform) = match (&to_srgb, opts.icc_to_srgb) {
            (Some(t), _) => (Some(&|rgb: &mut [u8]| t.apply(rgb)), format!("ICC {} -> sRGB (lcms2, perceptual)", t.source)),
            (None, true) => (None, "none: the slide has no ICC profile (treated as sRGB)".to_string()),
            (None, false) => (None, "none".to_string()),
        };
        #[cfg(not(feature = "icc"))]
        let (transform, color_transform): (Option<crate::slide_source::PixelTransform<'_>>, String) = (None, "none".to_string());

        let mut meta = provenance(encoder);
        meta.insert("color_transform".to_string(), color_transform.clone());
        meta.insert("level".to_string(), level.index().to_string());
        if let Some(p) = &prompts {
            p.describe_in(&mut meta);
        }
        meta.insert("series_instance_uid".to_string(), slide.series_instance_uid().to_string());
        meta.extend(extra_meta.iter().cloned());
        let parquet_path = work.join("embeddings.parquet");

        let dim = encoder.embedding_dim();
        let score_names = prompts.as_ref().map(|p| p.texts().to_vec()).unwrap_or_default();
        let parquet = ParquetSink::create_scored(&parquet_path, slide_id, level.index() as u32, level.mpp(), dim, meta, &score_names)?;
        let mut sink = SlideSink {
            parquet,
            records: Vec::with_capacity(kept),
            embeddings: Vec::with_capacity(kept * dim),
            dim,
            prompts: prompts.as_ref(),
            scores: vec![Vec::with_capacity(kept); score_names.len()],
        };
        let mut source = SlidePatches::new(&grid, keep, &fractions, transform.map(|t| t as crate::slide_source::PixelTransform<'_>));
        if opts.skip_unreadable_frames {
            source = source.skip_unreadable(level);
        }
        let engine_opts = EngineOptions { batch_size: opts.batch_size, queue_depth: opts.queue_depth };
        let report = engine::run(&mut source, encoder, &mut sink, engine_opts, cancel, progress)?;
        let unreadable = source.unreadable().to_vec();
        if report.rows + unreadable.len() != kept {
            return Err(PipelineError::Options(format!("internal: {} of {kept} patches embedded, {} unreadable", report.rows, unreadable.len())));
        }
        if (report.rows < opts.k.max(1) && cfg!(feature = "heatmaps")) || report.rows == 0 {
            return Err(PipelineError::Input {
                path: slide.location().to_string(),
                problem: format!(
                    "{} of the {kept} patches lie over unreadable frames (the first: {}), leaving {} for k = {} clusters{}",
                    unreadable.len(),
                    unreadable.first().map_or("none", |u| u.error.as_str()),
                    report.rows,
                    opts.k,
                    if report.rows == 0 { "" } else { "; lower --k" }
                ),
            });
        }
        if opts.skip_unreadable_frames {
            let list: Vec<serde_json::Value> = unreadable.iter().map(|u| serde_json::json!({"x": u.x, "y": u.y, "error": u.error})).collect();
            sink.parquet.append_metadata("unreadable_patches", &serde_json::Value::Array(list).to_string());
        }

        #[cfg(feature = "heatmaps")]
        let (labels, pictures) = {
            let layout = Layout { thumb: &thumb, level_size: (level.width(), level.height()), grid: (grid.cols(), grid.rows()), patch: size };
            let maps = cluster_and_draw(&sink.embeddings, dim, &sink.records, &layout, opts.k, opts.seed, work)?;
            let mut pictures = vec![maps.heatmap, maps.clusters];
            pictures.extend(crate::score_maps::draw_score_maps(&score_names, &sink.scores, &sink.records, &layout, work)?);
            (maps.labels, pictures)
        };
        #[cfg(not(feature = "heatmaps"))]
        let (labels, pictures): (Vec<usize>, Vec<PathBuf>) = (Vec::new(), Vec::new());
        let parquet_path = sink.parquet.finish()?;
        // The previous run's pictures go with its Parquet file (score maps are named by prompt).
        let stale = |name: &str| matches!(name, "heatmap.png" | "clusters.png") || crate::zero_shot::is_score_map_name(name);
        let outputs = staging.publish(&parquet_path, &pictures, &stale)?;

        Ok(RunSummary {
            slide_id: slide_id.to_string(),
            level: level.index(),
            mpp: level.mpp(),
            patches_total: grid.len(),
            patches_embedded: report.rows,
            patches_skipped: grid.len() - kept,
            unreadable,
            tissue_coverage: mask.coverage(),
            seconds: start.elapsed().as_secs_f64(),
            stages: report.stages,
            labels,
            outputs,
            trained: encoder.is_trained(),
            color_transform,
        })
    };
    staged().map_err(|e| e.relocated(&work_dir, out_dir))
}
