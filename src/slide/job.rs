//! The slide job: slide → tissue mask → the slide source (patch grid, parallel decode) → the
//! [`Job`] runner (batching, encoder, Parquet) → the after-step (k-means and the heatmaps,
//! score maps). The slide's key columns: `slide_id` Utf8 (SeriesInstanceUID unless set),
//! `level` UInt32, `mpp` Float64 (NaN when the slide gives no spacing), `x`, `y`, `width`,
//! `height` UInt32 (level pixels), `tissue_fraction` Float32.

use crate::error::{PipelineError, Result};
use crate::job::{Finishing, Job, KeyOf, Modality, Opened, Opening, OutputLayout};
#[cfg(feature = "heatmaps")]
use crate::maps::{cluster_and_draw, draw_score_maps, Layout};
#[cfg(feature = "icc")]
use crate::slide::color::ToSrgb;
use crate::slide::source::{PatchRecord, PixelTransform, SlidePatches, UnreadablePatch};
use crate::slide::tissue::{mask_level, TissueMask};
use arrow_array::{ArrayRef, Float32Array, Float64Array, StringArray, UInt32Array};
use arrow_schema::{DataType, Field};
use haidef_wsi_dicom::{Level, PatchGridOptions, Slide};
use haidef_wsi_encoders::Encoder;
use std::path::Path;
use std::sync::Arc;

/// Which level to embed.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum LevelChoice {
    /// A pyramid level by index (0 = full resolution).
    Index(usize),
    /// The level nearest this many µm per pixel (it must be within a factor 2).
    Mpp(f64),
}

/// How a slide is embedded. `Default` embeds tissue patches (≥ 50% tissue) of the level nearest
/// 1 µm/px (~10×) and makes 6 clusters with seed 0. Batch size and queue depth are the job's
/// ([`Job::batch_size`]; 32 patches unless set).
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct PipelineOptions {
    /// Level to embed.
    pub level: LevelChoice,
    /// Keep patches whose tissue fraction is at least this.
    pub min_tissue: f32,
    /// Embed every patch, skipping tissue detection.
    pub all_patches: bool,
    /// k-means clusters (the after-step runs with the `heatmaps` feature).
    pub k: usize,
    /// k-means seed.
    pub seed: u64,
    /// Convert patches from the slide's ICC profile to sRGB before embedding (no-op, and said
    /// so in the metadata, when the slide has no profile). Needs the `icc` feature.
    pub icc_to_srgb: bool,
    /// Zero-shot prompts (models with a text side, e.g. MedSigLIP): each adds a score column
    /// named after it and, with the `heatmaps` feature, a `score-<n>-<prompt>.png` picture
    /// (given to the job as [`Job::prompts`]).
    pub prompts: Vec<String>,
    /// Leave out the patches over a broken frame (one that does not decode, or that the file
    /// ends inside; listed in
    /// [`SlideReport::unreadable`] and in the Parquet metadata under `unreadable_patches`)
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
            k: 6,
            seed: 0,
            icc_to_srgb: false,
            prompts: Vec::new(),
            skip_unreadable_frames: false,
        }
    }
}

impl PipelineOptions {
    /// The level to embed.
    pub fn level(mut self, level: LevelChoice) -> Self {
        self.level = level;
        self
    }

    /// The tissue fraction a patch needs to be embedded.
    pub fn min_tissue(mut self, fraction: f32) -> Self {
        self.min_tissue = fraction;
        self
    }

    /// Whether to embed every patch, skipping tissue detection.
    pub fn all_patches(mut self, all: bool) -> Self {
        self.all_patches = all;
        self
    }

    /// The number of k-means clusters.
    pub fn k(mut self, k: usize) -> Self {
        self.k = k;
        self
    }

    /// The k-means seed.
    pub fn seed(mut self, seed: u64) -> Self {
        self.seed = seed;
        self
    }

    /// Whether to convert patches from the slide's ICC profile to sRGB.
    pub fn icc_to_srgb(mut self, on: bool) -> Self {
        self.icc_to_srgb = on;
        self
    }

    /// The zero-shot prompts.
    pub fn prompts(mut self, prompts: Vec<String>) -> Self {
        self.prompts = prompts;
        self
    }

    /// Whether to leave out the patches over broken frames instead of stopping.
    pub fn skip_unreadable_frames(mut self, on: bool) -> Self {
        self.skip_unreadable_frames = on;
        self
    }
}

/// What a slide job reports beside the shared [`crate::JobSummary`] fields.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct SlideReport {
    /// The slide's id in the output: its SeriesInstanceUID unless [`SlideJob::slide_id`] set one.
    pub slide_id: String,
    /// Level embedded.
    pub level: usize,
    /// Its µm/px, if known.
    pub mpp: Option<f64>,
    /// Patches in the level's grid.
    pub patches_total: usize,
    /// Patches skipped for too little tissue.
    pub patches_skipped: usize,
    /// Patches left out because a frame under them cannot be read (only with
    /// [`PipelineOptions::skip_unreadable_frames`]), in grid order.
    pub unreadable: Vec<UnreadablePatch>,
    /// Fraction of the mask level covered by tissue.
    pub tissue_coverage: f64,
    /// Cluster of each embedded patch, in file order (empty without the `heatmaps` feature).
    pub labels: Vec<usize>,
    /// Colour transform applied before embedding, in words.
    pub color_transform: String,
}

/// What a slide job did: [`crate::JobSummary`]'s fields (`outputs`: `embeddings.parquet`, then,
/// with the `heatmaps` feature, `heatmap.png`, `clusters.png` and the score maps) and
/// [`SlideReport`]'s.
pub type RunSummary = crate::job::JobSummary<SlideReport>;

/// Resolves the level to embed, with errors that list what the slide has.
pub fn choose_level(slide: &Slide, choice: LevelChoice) -> Result<&Level> {
    match choice {
        LevelChoice::Index(i) => slide.level(i).map_err(|e| PipelineError::Options(e.to_string())),
        LevelChoice::Mpp(m) => {
            let level = slide.level_for_mpp(m).map_err(|e| PipelineError::Options(format!("{e}; choose a level by index (LevelChoice::Index)")))?;
            let have = level.mpp().expect("level_for_mpp only picks levels with a spacing");
            if !(0.5..=2.0).contains(&(have / m)) {
                let span: Vec<String> = slide.levels().iter().filter_map(|l| l.mpp()).map(|v| format!("{v:.3}")).collect();
                return Err(PipelineError::Options(format!(
                    "{m} µm/px is beyond this pyramid (its levels are {} µm/px); choose within a factor 2 of one, or a level by index (LevelChoice::Index)",
                    span.join(", ")
                )));
            }
            Ok(level)
        }
    }
}

/// The slide modality: one pyramid level's tissue patches, keyed by position.
pub struct Slides<'a> {
    slide: &'a Slide,
    options: PipelineOptions,
    slide_id: Option<String>,
    /// Set by `open`, for the after-step.
    opened: Option<OpenedSlide<'a>>,
}

/// What the after-step needs of the opened slide.
struct OpenedSlide<'a> {
    slide_id: String,
    level: &'a Level,
    mask: TissueMask,
    patches_total: usize,
    kept: usize,
    color_transform: String,
    /// What the pictures are drawn on: the mask level's image, the grid's columns and rows, the
    /// patch side.
    #[cfg(feature = "heatmaps")]
    picture: (haidef_wsi_dicom::RgbImage, (u32, u32), u32),
}

/// The slide job, set up step by step and then run (a [`Job`] of [`Slides`]):
///
/// ```no_run
/// # fn main() -> Result<(), Box<dyn std::error::Error>> {
/// use haidef_wsi::{encoders::{candle::{DType, Device}, registry}, wsi::Slide, PipelineOptions, SlideJob};
/// let slide = Slide::open("path/to/slide")?;
/// let model = registry::find("path-foundation")?.untrained(&Device::Cpu, DType::F32)?;
/// let stop = std::sync::atomic::AtomicBool::new(false); // set it from a Ctrl-C handler
/// let mut options = PipelineOptions::default();
/// options.k = 4;
/// let summary = SlideJob::new(&slide, model.as_ref(), "out")
///     .options(options)
///     .cancel(&stop)
///     .progress(&|done, total| eprintln!("{done}/{total}"))
///     .run()?;
/// println!("{} patches embedded", summary.embedded);
/// # Ok(()) }
/// ```
pub type SlideJob<'a> = Job<'a, Slides<'a>>;

impl<'a> Job<'a, Slides<'a>> {
    /// Embeds `slide` with `encoder` into the folder `out_dir`, with [`PipelineOptions::default`].
    pub fn new(slide: &'a Slide, encoder: &'a dyn Encoder, out_dir: impl AsRef<Path>) -> Self {
        Job::of(Slides { slide, options: PipelineOptions::default(), slide_id: None, opened: None }, encoder, out_dir)
    }

    /// Level, tissue filter, k-means, colour and prompt options.
    pub fn options(mut self, options: PipelineOptions) -> Self {
        let prompts = options.prompts.clone();
        self.modality_mut().options = options;
        self.prompts(prompts)
    }

    /// The `slide_id` column's value (default: the slide's SeriesInstanceUID), e.g. a cohort
    /// manifest's own id for the slide.
    pub fn slide_id(mut self, id: impl Into<String>) -> Self {
        self.modality_mut().slide_id = Some(id.into());
        self
    }
}

impl<'a> Modality for Slides<'a> {
    type Source = SlidePatches<'a>;
    type Report = SlideReport;
    const LAYOUT: OutputLayout = OutputLayout::Folder;
    const DEFAULT_BATCH_SIZE: usize = 32;

    fn open(&mut self, opening: Opening<'_>) -> Result<Opened<SlidePatches<'a>>> {
        let (slide, opts, encoder) = (self.slide, &self.options, opening.encoder);
        // k only matters to the after-step (the `heatmaps` feature).
        if opts.k == 0 && cfg!(feature = "heatmaps") {
            return Err(PipelineError::Options("k must be at least 1".into()));
        }
        if opts.icc_to_srgb && !cfg!(feature = "icc") {
            return Err(PipelineError::Options(
                "ICC → sRGB was asked for, but this build of haidef-wsi has no colour management: enable its `icc` feature".into(),
            ));
        }
        let level = choose_level(slide, opts.level)?;
        let spec = encoder.input_spec();
        if spec.width != spec.height || spec.channels != 3 {
            return Err(PipelineError::Options(format!("the pipeline embeds square RGB patches; this encoder takes {}", spec.describe())));
        }
        let size = spec.width as u32;

        // Tissue: mask on a low-resolution level, fraction per patch of the chosen level.
        let level0 = &slide.levels()[0];
        let thumb = mask_level(slide).read_all()?;
        let mask = TissueMask::from_image(&thumb, (level0.width(), level0.height()));
        let grid = level.patch_grid(PatchGridOptions { size, stride: size })?;
        let fractions: Vec<f32> =
            grid.positions().map(|(x, y)| mask.fraction((x, y, size, size), (level.width(), level.height()), (level0.width(), level0.height()))).collect();
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
                 lower the tissue threshold (min_tissue) or embed every patch (all_patches)",
                grid.len(),
                level.index(),
                opts.min_tissue * 100.0,
                mask.coverage() * 100.0
            )));
        }
        if opts.k > kept && cfg!(feature = "heatmaps") {
            return Err(PipelineError::Options(format!("k = {} clusters but only {kept} patches will be embedded; lower k", opts.k)));
        }

        #[cfg(feature = "icc")]
        let (transform, color_transform): (Option<PixelTransform>, String) = match (opts.icc_to_srgb, &level.info().icc_profile) {
            (true, Some(icc)) => {
                let t = ToSrgb::from_icc(icc)?;
                let described = format!("ICC {} -> sRGB (lcms2, perceptual)", t.source);
                (Some(Box::new(move |rgb: &mut [u8]| t.apply(rgb))), described)
            }
            (false, _) => (None, "none".to_string()),
            (true, None) => (None, "none: the slide has no ICC profile (treated as sRGB)".to_string()),
        };
        #[cfg(not(feature = "icc"))]
        let (transform, color_transform): (Option<PixelTransform>, String) = (None, "none".to_string());

        let meta = opening.metadata;
        meta.insert("color_transform".to_string(), color_transform.clone());
        meta.insert("level".to_string(), level.index().to_string());
        meta.insert("series_instance_uid".to_string(), slide.series_instance_uid().to_string());
        // Level-0 pixels per embedded-level pixel: what places the patches (x, y are the
        // level's pixels) on the full-resolution image viewers such as QuPath use.
        let level0_width = slide.levels().first().map_or(level.width(), |l| l.width());
        meta.insert("level_downsample".to_string(), (f64::from(level0_width) / f64::from(level.width().max(1))).to_string());

        let patches_total = grid.len();
        #[cfg(feature = "heatmaps")]
        let grid_size = (grid.cols(), grid.rows());
        let mut source = SlidePatches::new(grid, keep, fractions, transform);
        if opts.skip_unreadable_frames {
            source = source.skip_unreadable(level);
        }
        let slide_id = self.slide_id.clone().unwrap_or_else(|| slide.series_instance_uid().to_string());
        self.opened = Some(OpenedSlide {
            slide_id,
            level,
            mask,
            patches_total,
            kept,
            color_transform,
            #[cfg(feature = "heatmaps")]
            picture: (thumb, grid_size, size),
        });
        let keys = vec![
            Field::new("slide_id", DataType::Utf8, false),
            Field::new("level", DataType::UInt32, false),
            Field::new("mpp", DataType::Float64, false),
            Field::new("x", DataType::UInt32, false),
            Field::new("y", DataType::UInt32, false),
            Field::new("width", DataType::UInt32, false),
            Field::new("height", DataType::UInt32, false),
            Field::new("tissue_fraction", DataType::Float32, false),
        ];
        Ok(Opened { source, keys })
    }

    fn key_columns(&self, records: &[PatchRecord]) -> Vec<ArrayRef> {
        let o = self.opened.as_ref().expect("open comes first");
        let n = records.len();
        let u32s = |f: fn(&PatchRecord) -> u32| Arc::new(UInt32Array::from_iter_values(records.iter().map(f))) as ArrayRef;
        vec![
            Arc::new(StringArray::from_iter_values(std::iter::repeat_n(&o.slide_id, n))),
            Arc::new(UInt32Array::from_iter_values(std::iter::repeat_n(o.level.index() as u32, n))),
            Arc::new(Float64Array::from_iter_values(std::iter::repeat_n(o.level.mpp().unwrap_or(f64::NAN), n))),
            u32s(|r| r.x),
            u32s(|r| r.y),
            u32s(|r| r.width),
            u32s(|r| r.height),
            Arc::new(Float32Array::from_iter_values(records.iter().map(|r| r.tissue_fraction))),
        ]
    }

    fn keeps_row(&self, _: &PatchRecord) -> bool {
        // k-means and the pictures need every row.
        cfg!(feature = "heatmaps")
    }

    fn keeps_all_rows(&self) -> bool {
        cfg!(feature = "heatmaps")
    }

    fn finish(&mut self, source: SlidePatches<'a>, done: &mut Finishing<'_, KeyOf<Self>>) -> Result<SlideReport> {
        let o = self.opened.take().expect("open comes first");
        let opts = &self.options;
        let (rows, kept) = (done.rows, o.kept);
        let unreadable = source.unreadable().to_vec();
        if rows + unreadable.len() != kept {
            return Err(PipelineError::Options(format!("internal: {rows} of {kept} patches embedded, {} unreadable", unreadable.len())));
        }
        if (rows < opts.k.max(1) && cfg!(feature = "heatmaps")) || rows == 0 {
            return Err(PipelineError::Input {
                path: self.slide.location().to_string(),
                problem: format!(
                    "{} of the {kept} patches lie over unreadable frames (the first: {}), leaving {rows} for k = {} clusters{}",
                    unreadable.len(),
                    unreadable.first().map_or("none", |u| u.error.as_str()),
                    opts.k,
                    if rows == 0 { "" } else { "; lower k" }
                ),
            });
        }
        if opts.skip_unreadable_frames {
            let list: Vec<serde_json::Value> = unreadable.iter().map(|u| serde_json::json!({"x": u.x, "y": u.y, "error": u.error})).collect();
            done.metadata.push(("unreadable_patches".to_string(), serde_json::Value::Array(list).to_string()));
        }

        #[cfg(feature = "heatmaps")]
        let labels = {
            let work = done.staging.expect("a folder job has a staging folder");
            let positions: Vec<(u32, u32)> = done.keys.iter().map(|r| (r.x, r.y)).collect();
            let (thumb, grid, patch) = &o.picture;
            let layout = Layout { thumb, level_size: (o.level.width(), o.level.height()), grid: *grid, patch: *patch };
            let maps = cluster_and_draw(done.embeddings, done.dim, &positions, &layout, opts.k, opts.seed, work)?;
            done.pictures.extend([maps.heatmap, maps.clusters]);
            let scores = draw_score_maps(done.prompts, done.scores, &positions, &layout, work)?;
            done.pictures.extend(scores);
            maps.labels
        };
        #[cfg(not(feature = "heatmaps"))]
        let labels = Vec::new();
        Ok(SlideReport {
            slide_id: o.slide_id,
            level: o.level.index(),
            mpp: o.level.mpp(),
            patches_total: o.patches_total,
            patches_skipped: o.patches_total - kept,
            unreadable,
            tissue_coverage: o.mask.coverage(),
            labels,
            color_transform: o.color_transform,
        })
    }

    fn is_previous_picture(&self, name: &str) -> bool {
        // The previous run's pictures go with its Parquet file (score maps are named by prompt).
        matches!(name, "heatmap.png" | "clusters.png") || crate::zero_shot::is_score_map_name(name)
    }
}
