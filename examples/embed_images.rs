//! Embeds image files (PNG, JPEG: 8/16-bit, grey/RGB/RGBA, EXIF orientation applied) with any
//! registered model and writes one Parquet row per image: `path`, `width`, `height` (as
//! displayed) and `embedding`. A file that cannot be used is reported, skipped and listed in the
//! output's metadata (`failed_files`); the others go on.
//!
//! `cargo run --release --example embed_images -- <files or folders>... --out F.parquet [--model NAME] [--weights W] [--batch B] [--device D]`

#[path = "common/model_args.rs"]
mod model_args;

use clap::Parser;
use haidef_wsi::encoders::{device_name, registry, UNTRAINED_WARNING};
use haidef_wsi::{find_images, DEFAULT_MAX_PIXELS};
use haidef_wsi::{ImageJob, ImageOptions};
use indicatif::{ProgressBar, ProgressStyle};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;

/// Embed PNG and JPEG files with a HAI-DEF (or timm) model into a Parquet file.
#[derive(Parser, Debug)]
#[command(version, after_help = models_help())]
struct Cli {
    /// Image files, or folders searched recursively for .png, .jpg and .jpeg files.
    #[arg(required = true)]
    inputs: Vec<PathBuf>,
    /// The Parquet file to write.
    #[arg(long)]
    out: PathBuf,
    #[command(flatten)]
    model: model_args::ModelArgs,
    /// Images per batch [default: 8 on CPU, 256 on CUDA].
    #[arg(long)]
    batch: Option<usize>,
    /// Refuse images with more pixels than this (decompression bombs).
    #[arg(long, default_value_t = DEFAULT_MAX_PIXELS)]
    max_pixels: u64,
    /// A zero-shot prompt (repeatable; models with a text side: --model medsiglip --weights
    /// DIR): adds a score column named after it.
    #[arg(long = "prompt", value_name = "TEXT")]
    prompts: Vec<String>,
}

fn models_help() -> String {
    let mut s = String::from("Models:\n");
    for m in registry::models() {
        s.push_str(&format!("  {:<22} {} [input {}]\n", m.name, m.summary, m.input.describe()));
    }
    s
}

fn run(cli: Cli) -> Result<bool, Box<dyn std::error::Error>> {
    let model_args::Loaded { entry, model, device, dtype } = cli.model.load(None)?;
    let files = find_images(&cli.inputs)?;
    if files.is_empty() {
        return Err("no PNG or JPEG files found in the paths given".into());
    }
    let batch = cli.batch.unwrap_or(if device.is_cpu() { 8 } else { 256 });
    println!(
        "{} files, model {} ({}), device {} {dtype:?}, batch {batch}, input {}",
        files.len(),
        entry.name,
        if model.is_trained() { model.weights_id() } else { "UNTRAINED" },
        device_name(&device),
        model.input_spec().describe()
    );
    if let Some(dir) = cli.out.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).map_err(|e| format!("{}: cannot create: {e}", dir.display()))?;
    }
    let cancel = Arc::new(AtomicBool::new(false));
    let flag = cancel.clone();
    ctrlc::set_handler(move || flag.store(true, Ordering::Relaxed))?;
    let bar = ProgressBar::new(files.len() as u64);
    bar.set_style(ProgressStyle::with_template("{spinner} [{elapsed_precise}] {bar:40} {pos}/{len} images  {per_sec}  ETA {eta}").expect("template"));
    let opts = ImageOptions::default().max_pixels(cli.max_pixels);
    // The bar counts files done: rows written plus files skipped.
    let skipped = AtomicUsize::new(0);
    let progress = |done: usize, _: usize| bar.set_position((done + skipped.load(Ordering::Relaxed)) as u64);
    let on_skip = |s: &haidef_wsi::Skipped| {
        skipped.fetch_add(1, Ordering::Relaxed);
        bar.suspend(|| eprintln!("skipped: {}", s.error));
    };
    let result = ImageJob::new(files, model.as_ref(), &cli.out)
        .model_name(entry.name)
        .prompts(cli.prompts.clone())
        .options(opts)
        .batch_size(batch)
        .cancel(&cancel)
        .progress(&progress)
        .on_skip(&on_skip)
        .run();
    bar.finish_and_clear();
    let s = result?;
    println!(
        "{} images embedded, {} skipped; wrote {} in {:.2} s (busy: read {:.2} s, encode {:.2} s, write {:.3} s)",
        s.embedded,
        s.skipped.len(),
        s.output().display(),
        s.seconds,
        s.stages.read.as_secs_f64(),
        s.stages.encode.as_secs_f64(),
        s.stages.write.as_secs_f64()
    );
    if !model.is_trained() {
        println!("{UNTRAINED_WARNING}");
    }
    Ok(s.embedded > 0)
}

fn main() {
    haidef_wsi::encoders::tune_cpu_inference();
    let cli = Cli::parse();
    match run(cli) {
        Ok(true) => {}
        Ok(false) => {
            eprintln!("error: no image could be embedded (each is listed above and in the file's failed_files)");
            std::process::exit(1);
        }
        Err(e) => {
            eprintln!("error: {e}");
            std::process::exit(1);
        }
    }
}
