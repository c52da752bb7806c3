//! The main job: embed every tissue patch of a slide with Path Foundation, write the embeddings
//! to Parquet and a k-means heatmap of the slide.
//!
//! `cargo run --release --example slide_heatmap -- <slide> --out <dir> [--model NAME] [--weights f.safetensors] [--level L | --mpp M] [--k K] [--min-tissue F] [--all-patches] [--icc-to-srgb] [--device cpu|cuda[:N]] [--batch B] [--seed S]`
//!
//! Writes `<dir>/embeddings.parquet`, `<dir>/heatmap.png` and `<dir>/clusters.png`.

#[path = "common/args.rs"]
mod args;

use haidef_wsi::encoders::candle::DType;
use haidef_wsi::encoders::{device_name, parse_device, registry, UNTRAINED_WARNING};
use haidef_wsi::{LevelChoice, PipelineOptions};
use indicatif::{ProgressBar, ProgressStyle};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

const USAGE: &str = "usage: slide_heatmap <slide folder, file or DICOMweb series/study URL> [--bearer-token T | --basic-auth user:pass] [--ca-cert ca.pem] --out <dir> [--model NAME] [--weights f.safetensors] \
[--level L | --mpp M] [--k K] [--min-tissue F] [--all-patches] [--icc-to-srgb] [--device cpu|cuda[:N]] [--batch B] [--seed S]\n\
  defaults: --mpp 1.0 (~10x), --k 6, --min-tissue 0.5, --device cpu, --batch 32 (cpu) / 256 (cuda), --seed 0";

fn run(args: &args::Args) -> Result<(), Box<dyn std::error::Error>> {
    let out: String = args.required("out");
    let device = parse_device(args.opt("device").unwrap_or("cpu"))?;
    let dtype = if device.is_cpu() { DType::F32 } else { DType::BF16 };
    let entry = registry::find(args.opt("model").unwrap_or(registry::DEFAULT_MODEL))?;
    if args.opt("weights").is_none() {
        eprintln!("\n{UNTRAINED_WARNING}\n");
    }
    let model = entry.open(args.opt("weights").map(std::path::Path::new), &device, dtype)?;
    let level = match (args.num::<usize>("level"), args.num::<f64>("mpp")) {
        (Some(_), Some(_)) => return Err("give --level or --mpp, not both".into()),
        (Some(l), None) => LevelChoice::Index(l),
        (None, m) => LevelChoice::Mpp(m.unwrap_or(1.0)),
    };
    let opts = PipelineOptions {
        level,
        min_tissue: args.num("min-tissue").unwrap_or(0.5),
        all_patches: args.switch("all-patches"),
        batch_size: args.num("batch").unwrap_or(if device.is_cpu() { 32 } else { 256 }),
        k: args.num("k").unwrap_or(6),
        seed: args.num("seed").unwrap_or(0),
        icc_to_srgb: args.switch("icc-to-srgb"),
        ..PipelineOptions::default()
    };
    let slide = args::open_slide(args)?;
    let chosen = haidef_wsi::choose_level(&slide, opts.level)?;
    println!(
        "slide {}\nlevel {} ({}x{}, {} µm/px), model {} ({}), device {} {:?}, batch {}",
        slide.location(),
        chosen.index(),
        chosen.width(),
        chosen.height(),
        chosen.mpp().map(|m| format!("{m:.3}")).unwrap_or_else(|| "?".into()),
        model.model_id(),
        if model.is_trained() { model.weights_id() } else { "UNTRAINED" },
        device_name(&device),
        dtype,
        opts.batch_size
    );

    let cancel = Arc::new(AtomicBool::new(false));
    let flag = cancel.clone();
    ctrlc::set_handler(move || flag.store(true, Ordering::Relaxed))?;
    let bar = ProgressBar::new(0);
    bar.set_style(
        ProgressStyle::with_template("{spinner} [{elapsed_precise}] {bar:40} {pos}/{len} patches  {per_sec}  ETA {eta}")
            .expect("valid template"),
    );
    let progress = |done: usize, total: usize| {
        bar.set_length(total as u64);
        bar.set_position(done as u64);
    };
    let result = haidef_wsi::run(&slide, model.as_ref(), std::path::Path::new(&out), &opts, &cancel, &progress);
    bar.finish_and_clear();
    let s = result?;
    let per_s = s.patches_per_second();
    println!(
        "patches: {} embedded, {} skipped (< {:.0}% tissue) of {}; tissue covers {:.1}% of the slide",
        s.patches_embedded,
        s.patches_skipped,
        opts.min_tissue * 100.0,
        s.patches_total,
        s.tissue_coverage * 100.0
    );
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
    let args = args::Args::parse(USAGE, &["all-patches", "icc-to-srgb"]);
    if let Err(e) = run(&args) {
        eprintln!("error: {e}");
        std::process::exit(1);
    }
}
