//! The streaming pipeline: slide → tissue mask → patch grid → parallel decode → batching →
//! encoder → Parquet sink, then k-means and the heatmap.
//!
//! Three stages run at once, joined by bounded channels, so decoding, packing/inference and
//! writing overlap and memory stays bounded (at most `queue_depth` batches in flight between
//! stages, plus the decoded band of frame rows): a reader thread (the patch grid decodes frames
//! in parallel on rayon), an encoder thread (packs batches and runs the model), and the writer
//! on the calling thread. Each stage's busy time is measured, so a run tells whether the model
//! waited for the reader.

use crate::atomic::write_png;
use crate::clusters::kmeans;
use crate::color::ToSrgb;
use crate::error::{PipelineError, Result};
use crate::heatmap::{render_cluster_map, render_heatmap, Cell};
use crate::sink::{ParquetSink, PatchRecord};
use crate::tissue::{mask_level, TissueMask};
use haidef_wsi_dicom::{Level, PatchGridOptions, Slide};
use haidef_wsi_encoders::batch::{Batcher, ImageRef};
use haidef_wsi_encoders::{Encoder, UNTRAINED_WARNING};
use rayon::prelude::*;
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{sync_channel, Receiver, SyncSender};
use std::time::{Duration, Instant};

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
    /// k-means clusters.
    pub k: usize,
    /// k-means seed.
    pub seed: u64,
    /// Batches in flight between two stages.
    pub queue_depth: usize,
    /// Convert patches from the slide's ICC profile to sRGB before embedding (no-op, and said
    /// so in the metadata, when the slide has no profile).
    pub icc_to_srgb: bool,
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
        }
    }
}

/// Busy time of each stage (time spent working, not waiting on a channel).
#[derive(Debug, Clone, Copy, Default)]
pub struct StageTimes {
    /// Reading and decoding frames, cutting patches.
    pub read: Duration,
    /// Packing batches and running the encoder.
    pub encode: Duration,
    /// Writing Parquet rows.
    pub write: Duration,
    /// Time the encoder stage waited for the reader.
    pub encode_waited: Duration,
}

/// What a run did.
#[derive(Debug, Clone)]
pub struct RunSummary {
    /// SeriesInstanceUID of the slide.
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
    /// Fraction of the mask level covered by tissue.
    pub tissue_coverage: f64,
    /// Wall time of the whole run.
    pub seconds: f64,
    /// Busy time per stage.
    pub stages: StageTimes,
    /// Cluster of each embedded patch, in file order.
    pub labels: Vec<usize>,
    /// Files written: embeddings.parquet, heatmap.png, clusters.png.
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

type Batch = (Vec<PatchRecord>, Vec<haidef_wsi_dicom::Patch>);

/// Runs the pipeline on `slide` with `encoder`, writing into `out_dir`. `cancel` stops it
/// promptly (nothing is left half-written); `progress(done, total)` is called as rows are
/// written.
pub fn run(
    slide: &Slide,
    encoder: &dyn Encoder,
    out_dir: &Path,
    opts: &PipelineOptions,
    cancel: &AtomicBool,
    progress: &(dyn Fn(usize, usize) + Sync),
) -> Result<RunSummary> {
    let start = Instant::now();
    if opts.batch_size == 0 || opts.queue_depth == 0 {
        return Err(PipelineError::Options("batch size and queue depth must be at least 1".into()));
    }
    if opts.k == 0 {
        return Err(PipelineError::Options("k must be at least 1".into()));
    }
    let level = choose_level(slide, opts.level)?;
    let spec = encoder.input_spec().clone();
    if spec.width != spec.height || spec.channels != 3 {
        return Err(PipelineError::Options(format!("the pipeline embeds square RGB patches; this encoder takes {}", spec.describe())));
    }
    let size = spec.width as u32;
    std::fs::create_dir_all(out_dir).map_err(|e| PipelineError::output(out_dir, e))?;

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
    if opts.k > kept {
        return Err(PipelineError::Options(format!(
            "k = {} clusters but only {kept} patches will be embedded; lower --k",
            opts.k
        )));
    }

    let to_srgb = match (opts.icc_to_srgb, &level.info().icc_profile) {
        (true, Some(icc)) => Some(ToSrgb::from_icc(icc)?),
        _ => None,
    };
    let color_transform = match (&to_srgb, opts.icc_to_srgb) {
        (Some(t), _) => format!("ICC {} -> sRGB (lcms2, perceptual)", t.source),
        (None, true) => "none: the slide has no ICC profile (treated as sRGB)".to_string(),
        (None, false) => "none".to_string(),
    };

    // Outputs are written under .partial names and renamed at the end.
    let mut meta = HashMap::new();
    meta.insert("color_transform".to_string(), color_transform.clone());
    meta.insert("model_id".to_string(), encoder.model_id().to_string());
    meta.insert("weights_sha256".to_string(), encoder.weights_id().to_string());
    meta.insert("library_version".to_string(), format!("haidef-wsi {}", env!("CARGO_PKG_VERSION")));
    meta.insert("input_scaling".to_string(), spec.describe());
    meta.insert("level".to_string(), level.index().to_string());
    if !encoder.is_trained() {
        meta.insert("warning".to_string(), UNTRAINED_WARNING.to_string());
    }
    let parquet_path = out_dir.join("embeddings.parquet");
    let mut sink =
        ParquetSink::create(&parquet_path, slide.series_instance_uid(), level.index() as u32, level.mpp(), encoder.embedding_dim(), meta)?;

    let dim = encoder.embedding_dim();
    let mut stages = StageTimes::default();
    let mut all_embeddings: Vec<f32> = Vec::with_capacity(kept * dim);
    let mut records_all: Vec<PatchRecord> = Vec::with_capacity(kept);
    let (to_encoder, from_reader): (SyncSender<Batch>, Receiver<Batch>) = sync_channel(opts.queue_depth);
    let (to_writer, from_encoder) = sync_channel::<(Vec<PatchRecord>, Vec<f32>)>(opts.queue_depth);
    let cols = grid.cols();

    let (grid_ref, keep_ref, fractions_ref, spec_ref, to_srgb_ref) = (&grid, &keep, &fractions, &spec, &to_srgb);
    let outcome: Result<()> = std::thread::scope(|s| {
        let reader = s.spawn(move || -> Result<Duration> {
            let (grid, keep, fractions) = (grid_ref, keep_ref, fractions_ref);
            let mut busy = Duration::ZERO;
            let mut t = Instant::now();
            let mut records = Vec::with_capacity(opts.batch_size);
            let mut patches = Vec::with_capacity(opts.batch_size);
            for row in grid.rows_iter_selected(keep.clone())? {
                if cancel.load(Ordering::Relaxed) {
                    return Err(PipelineError::Cancelled);
                }
                for p in row? {
                    let i = (p.row * cols + p.col) as usize;
                    records.push(PatchRecord { x: p.x, y: p.y, width: size, height: size, tissue_fraction: fractions[i] });
                    patches.push(p);
                    if patches.len() == opts.batch_size {
                        busy += t.elapsed();
                        if to_encoder.send((std::mem::take(&mut records), std::mem::take(&mut patches))).is_err() {
                            return Ok(busy); // downstream stopped; its error is reported
                        }
                        t = Instant::now();
                    }
                }
            }
            busy += t.elapsed();
            if !patches.is_empty() {
                let _ = to_encoder.send((records, patches));
            }
            drop(to_encoder);
            Ok(busy)
        });
        let encoder_stage = s.spawn(move || -> Result<(Duration, Duration)> {
            let mut batcher = Batcher::new(spec_ref.clone(), opts.batch_size, encoder.device().clone(), encoder.dtype())?;
            let (mut busy, mut waited) = (Duration::ZERO, Duration::ZERO);
            loop {
                let t = Instant::now();
                let Ok((records, mut patches)) = from_reader.recv() else { break };
                waited += t.elapsed();
                if cancel.load(Ordering::Relaxed) {
                    return Err(PipelineError::Cancelled);
                }
                let t = Instant::now();
                if let Some(tr) = to_srgb_ref {
                    patches.par_iter_mut().for_each(|p| tr.apply(&mut p.rgb));
                }
                let images: Vec<ImageRef<'_>> = patches.iter().map(|p| ImageRef::rgb(size as usize, size as usize, &p.rgb)).collect();
                let emb = encoder.embed(&batcher.pack(&images)?)?;
                let emb = emb.flatten_all().map_err(haidef_wsi_encoders::EncoderError::from)?.to_vec1::<f32>().map_err(haidef_wsi_encoders::EncoderError::from)?;
                drop(images);
                drop(patches);
                busy += t.elapsed();
                if to_writer.send((records, emb)).is_err() {
                    break;
                }
            }
            drop(to_writer);
            Ok((busy, waited))
        });
        // Writer: this thread.
        let mut write_result = Ok(());
        for (records, emb) in from_encoder.iter() {
            if cancel.load(Ordering::Relaxed) {
                write_result = Err(PipelineError::Cancelled);
                break;
            }
            let t = Instant::now();
            if let Err(e) = sink.write(&records, &emb) {
                write_result = Err(e);
                break;
            }
            all_embeddings.extend_from_slice(&emb);
            records_all.extend_from_slice(&records);
            stages.write += t.elapsed();
            progress(records_all.len(), kept);
        }
        drop(from_encoder);
        // Report the first error in pipeline order.
        let read = reader.join().expect("reader thread panicked");
        let enc = encoder_stage.join().expect("encoder thread panicked");
        let read = read?;
        let (encode, waited) = enc?;
        write_result?;
        stages.read = read;
        stages.encode = encode;
        stages.encode_waited = waited;
        Ok(())
    });
    outcome?;
    if cancel.load(Ordering::Relaxed) {
        return Err(PipelineError::Cancelled);
    }
    if records_all.len() != kept {
        return Err(PipelineError::Options(format!("internal: {} of {kept} patches embedded", records_all.len())));
    }

    let labels = kmeans(&all_embeddings, dim, opts.k, opts.seed)?;
    let cells: Vec<Cell> = records_all.iter().zip(&labels).map(|(r, &label)| Cell { x: r.x, y: r.y, size, label }).collect();
    let heat = render_heatmap(&thumb, (level.width(), level.height()), &cells, opts.k);
    let cell_px = (1024 / grid.cols().max(grid.rows())).clamp(2, 32);
    let map_cells: Vec<(u32, u32, usize)> = records_all.iter().zip(&labels).map(|(r, &l)| (r.x / size, r.y / size, l)).collect();
    let map = render_cluster_map(grid.cols(), grid.rows(), &map_cells, cell_px);
    let heat_path = write_png(&out_dir.join("heatmap.png"), heat.width, heat.height, &heat.data)?;
    let map_path = write_png(&out_dir.join("clusters.png"), map.width, map.height, &map.data)?;
    let parquet_path = sink.finish()?;

    Ok(RunSummary {
        slide_id: slide.series_instance_uid().to_string(),
        level: level.index(),
        mpp: level.mpp(),
        patches_total: grid.len(),
        patches_embedded: records_all.len(),
        patches_skipped: grid.len() - kept,
        tissue_coverage: mask.coverage(),
        seconds: start.elapsed().as_secs_f64(),
        stages,
        labels,
        outputs: vec![parquet_path, heat_path, map_path],
        trained: encoder.is_trained(),
        color_transform,
    })
}
