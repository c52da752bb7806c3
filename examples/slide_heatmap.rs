//! The main job: embed every tissue patch of a slide with Path Foundation, write the embeddings
//! to Parquet and a k-means heatmap of the slide.
//!
//! `cargo run --release --example slide_heatmap -- <slide> --out <dir> [--model NAME] [--weights f.safetensors] [--level L | --mpp M] [--k K] [--min-tissue F] [--all-patches] [--icc-to-srgb] [--skip-unreadable-frames] [--device cpu|cuda[:N]] [--batch B] [--seed S]`
//!
//! Writes `<dir>/embeddings.parquet`, `<dir>/heatmap.png` and `<dir>/clusters.png`.

#[path = "common/args.rs"]
mod args;
#[path = "common/model_args.rs"]
mod model_args;
#[path = "common/pipeline_args.rs"]
mod pipeline_args;

use clap::Parser;
use haidef_wsi::encoders::{device_name, UNTRAINED_WARNING};
use indicatif::{ProgressBar, ProgressStyle};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

/// Embed a slide's tissue patches, write them to Parquet and draw a k-means heatmap.
#[derive(Parser, Debug)]
#[command(version)]
struct Cli {
    #[command(flatten)]
    slide: args::SlideArgs,
    /// Output folder: embeddings.parquet, heatmap.png, clusters.png (and a score picture per
    /// prompt).
    #[arg(long)]
    out: PathBuf,
    #[command(flatten)]
    model: model_args::ModelArgs,
    #[command(flatten)]
    pipeline: pipeline_args::PipelineArgs,
}

fn run(cli: &Cli) -> Result<(), Box<dyn std::error::Error>> {
    let model_args::Loaded { entry, model, device, dtype } = cli.model.load(None)?;
    let opts = cli.pipeline.options();
    let batch = cli.pipeline.batch_size(&device);
    let out = &cli.out;
    let slide = args::open_slide(&cli.slide)?;
    let chosen = haidef_wsi::choose_level(&slide, opts.level)?;
    println!(
        "slide {}\nlevel {} ({}x{}, {} µm/px), model {} ({}), device {} {:?}, batch {}",
        slide.location(),
        chosen.index(),
        chosen.width(),
        chosen.height(),
        chosen.mpp().map(|m| format!("{m:.3}")).unwrap_or_else(|| "?".into()),
        entry.name,
        if model.is_trained() { model.weights_id() } else { "UNTRAINED" },
        device_name(&device),
        dtype,
        batch
    );

    let cancel = Arc::new(AtomicBool::new(false));
    let flag = cancel.clone();
    ctrlc::set_handler(move || flag.store(true, Ordering::Relaxed))?;
    let bar = ProgressBar::new(0);
    bar.set_style(ProgressStyle::with_template("{spinner} [{elapsed_precise}] {bar:40} {pos}/{len} patches  {per_sec}  ETA {eta}").expect("valid template"));
    let progress = |done: usize, total: usize| {
        bar.set_length(total as u64);
        bar.set_position(done as u64);
    };
    let result = haidef_wsi::SlideJob::new(&slide, model.as_ref(), out).options(opts.clone()).batch_size(batch).cancel(&cancel).progress(&progress).run();
    bar.finish_and_clear();
    let s = result?;
    let per_s = s.per_second();
    println!(
        "patches: {} embedded, {} skipped (< {:.0}% tissue) of {}; tissue covers {:.1}% of the slide",
        s.embedded,
        s.patches_skipped,
        opts.min_tissue * 100.0,
        s.patches_total,
        s.tissue_coverage * 100.0
    );
    if !s.unreadable.is_empty() {
        println!(
            "unreadable: {} patches left out (listed in embeddings.parquet's metadata, unreadable_patches); the first: {}",
            s.unreadable.len(),
            s.unreadable[0].error
        );
    }
    println!("time: {:.2} s, {:.1} patches/s, {:.0} embeddings/hour", s.seconds, per_s, per_s * 3600.0);
    println!(
        "stages (busy): read {:.2} s, encode {:.2} s (waited {:.2} s for the reader), write {:.2} s",
        s.stages.read.as_secs_f64(),
        s.stages.encode.as_secs_f64(),
        s.stages.encode_waited.as_secs_f64(),
        s.stages.write.as_secs_f64()
    );
    println!("colour: {}", s.color_transform);
    for o in &s.outputs {
        println!("wrote {}", o.display());
    }
    if !s.trained {
        println!("{UNTRAINED_WARNING}");
    }
    Ok(())
}

fn main() {
    haidef_wsi::encoders::tune_cpu_inference();
    if let Err(e) = run(&Cli::parse()) {
        args::exit_with(e);
    }
}
