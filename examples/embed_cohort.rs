//! One shard of a cohort: the slides of a manifest embedded into one Parquet dataset, resumable.
//! A Slurm job array or a Kubernetes Indexed Job runs it once per shard (`deploy/`).
//!
//! `cargo run --release --example embed_cohort -- manifest.csv --out DIR --shards N [--shard I] [--shard-offset K] [--model NAME] [--weights F] [--device cpu|cuda[:N]] [--level L | --mpp M] [--k K] [--min-tissue F] [--all-patches] [--icc-to-srgb] [--batch B] [--seed S] [--bearer-token T]`
//!
//! Without `--shard`, the shard is `SLURM_ARRAY_TASK_ID` (minus `--shard-offset`) or
//! `JOB_COMPLETION_INDEX`. Writes `DIR/embeddings/slide_id=<id>/part-0.parquet`,
//! `DIR/heatmaps/<id>/`, `DIR/done/`, `DIR/failures/`. Exit status: 0 when every slide of the
//! shard is done, 1 when some failed (recorded in `DIR/failures`), 2 when the shard could not
//! start (manifest, options, a cohort folder started with other settings), 130 when
//! interrupted (SIGTERM, Ctrl-C): rerun the shard to finish.

#[path = "common/args.rs"]
mod args;
#[path = "common/model_args.rs"]
mod model_args;
#[path = "common/pipeline_args.rs"]
mod pipeline_args;

use clap::Parser;
use haidef_wsi::cohort::{CohortJob, Event, Manifest, Shard, ShardOrigin};
use haidef_wsi::encoders::{device_name, UNTRAINED_WARNING};
use indicatif::{ProgressBar, ProgressStyle};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

/// Embed one shard of a cohort's slides into a shared Parquet dataset (resumable).
#[derive(Parser, Debug)]
#[command(version)]
struct Cli {
    /// The cohort manifest: .csv (with a header) or .parquet, columns path, slide_id
    /// (optional), label (optional); relative paths are from the manifest's folder.
    manifest: PathBuf,
    /// The cohort folder, shared by every shard.
    #[arg(long)]
    out: PathBuf,
    /// How many shards the cohort is cut into (fixed by the first run).
    #[arg(long)]
    shards: usize,
    /// This shard, from 0 [default: SLURM_ARRAY_TASK_ID or JOB_COMPLETION_INDEX].
    #[arg(long)]
    shard: Option<usize>,
    /// Subtracted from SLURM_ARRAY_TASK_ID, for arrays numbered from 1 (--array=1-N).
    #[arg(long, default_value_t = 0)]
    shard_offset: usize,
    #[command(flatten)]
    model: model_args::ModelArgs,
    #[command(flatten)]
    pipeline: pipeline_args::PipelineArgs,
    #[command(flatten)]
    dicomweb: args::DicomWebArgs,
}

/// Exit statuses (see the module's documentation).
const FAILED: i32 = 1;
const NOT_STARTED: i32 = 2;
const INTERRUPTED: i32 = 130;

fn run(cli: &Cli) -> Result<i32, Box<dyn std::error::Error>> {
    let manifest = Manifest::open(&cli.manifest)?;
    let (shard, origin) = Shard::resolve(cli.shard, cli.shards, cli.shard_offset, |k| std::env::var(k).ok())?;
    let model_args::Loaded { entry, model, device, dtype } = cli.model.load(None)?;
    let opts = cli.pipeline.options();
    let batch = cli.pipeline.batch_size(&device);
    let origin = match origin {
        ShardOrigin::Argument => "--shard".to_string(),
        ShardOrigin::Slurm(job) => format!("Slurm array job {job}"),
        ShardOrigin::Kubernetes => "Kubernetes JOB_COMPLETION_INDEX".to_string(),
        ShardOrigin::Single => "the only shard".to_string(),
    };
    println!(
        "cohort {} ({} slides) → {}\nshard {} of {} (from {origin}), model {} ({}), device {} {:?}, batch {}",
        cli.manifest.display(),
        manifest.rows.len(),
        cli.out.display(),
        shard.index,
        shard.count,
        entry.name,
        if model.is_trained() { model.weights_id() } else { "UNTRAINED" },
        device_name(&device),
        dtype,
        batch
    );

    // SIGTERM (scancel, Kubernetes) and Ctrl-C stop the slide in progress cleanly.
    let cancel = Arc::new(AtomicBool::new(false));
    let flag = cancel.clone();
    ctrlc::set_handler(move || flag.store(true, Ordering::Relaxed))?;
    let bar = ProgressBar::new(0);
    bar.set_style(ProgressStyle::with_template("{spinner} [{elapsed_precise}] {bar:40} {pos}/{len} patches  {per_sec}  ETA {eta}").expect("valid template"));
    let slides = std::sync::atomic::AtomicUsize::new(0);
    let say = |line: String| bar.suspend(|| println!("{line}"));
    let events = |e: &Event<'_>| match e {
        Event::Shard { slides: n } => {
            slides.store(*n, Ordering::Relaxed);
            say(format!("{n} slides in this shard"));
        }
        Event::Skipped { row, slide_id } => say(format!("line {}: {slide_id} already done (verified), skipped", row.line)),
        Event::Redo { row, reason } => say(format!("line {}: redoing {}: {reason}", row.line, row.path)),
        Event::Started { row, slide_id, n } => {
            bar.reset();
            say(format!("[{n}/{}] line {}: {slide_id} ({})", slides.load(Ordering::Relaxed), row.line, row.path));
        }
        Event::Patches { done, total } => {
            bar.set_length(*total as u64);
            bar.set_position(*done as u64);
        }
        Event::Finished { record } => say(format!(
            "  {} patches in {:.1} s ({:.0} embeddings/hour) → embeddings/slide_id={}/part-0.parquet",
            record.rows,
            record.finished - record.started,
            record.per_hour(),
            record.slide_id
        )),
        Event::Failed { row, error, attempts } => say(format!("  line {} FAILED (attempt {attempts}): {error}", row.line)),
    };
    let mut job = CohortJob::new(&manifest, model.as_ref(), &cli.out, shard).options(opts).batch_size(batch).cancel(&cancel).events(&events);
    if manifest.rows.iter().any(|r| r.is_url()) {
        job = job.dicomweb(args::dicomweb_options(&cli.dicomweb)?);
    }
    let report = job.run()?;
    bar.finish_and_clear();
    println!(
        "shard {} of {}: {} slides: {} already done, {} embedded ({} patches, {:.1} s, {:.0} embeddings/hour), {} failed",
        shard.index,
        shard.count,
        report.slides,
        report.skipped,
        report.embedded,
        report.rows,
        report.seconds,
        report.rows as f64 * 3600.0 / report.seconds.max(1e-9),
        report.failed.len()
    );
    for (line, path, error) in &report.failed {
        println!("failed: line {line}: {path}: {error}");
    }
    if !model.is_trained() {
        println!("{UNTRAINED_WARNING}");
    }
    Ok(if report.cancelled {
        println!("interrupted: rerun this shard to finish it (finished slides are kept)");
        INTERRUPTED
    } else if !report.failed.is_empty() {
        println!("see {}/failures; `cohort_status` lists every slide", cli.out.display());
        FAILED
    } else {
        0
    })
}

fn main() {
    haidef_wsi::encoders::tune_cpu_inference();
    match run(&Cli::parse()) {
        Ok(code) => std::process::exit(code),
        Err(e) => {
            eprintln!("error: {}", args::with_flags(&e.to_string()));
            std::process::exit(NOT_STARTED)
        }
    }
}
