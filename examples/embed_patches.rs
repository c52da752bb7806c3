//! Embeds the 224×224 patch grid of one level of a slide with Path Foundation and prints, per
//! patch, its position and the first embedding values, plus the throughput.
//!
//! `cargo run --release --example embed_patches -- <slide> [--level L] [--limit N] [--model NAME] [--weights f.safetensors] [--device cpu|cuda[:N]] [--batch B] [--dtype f32|f16|bf16]`
//!
//! Without `--weights` it runs an untrained, seeded ViT and says so loudly.

#[path = "common/args.rs"]
mod args;
#[path = "common/model_args.rs"]
mod model_args;

use clap::Parser;
use haidef_wsi::encoders::candle::DType;
use haidef_wsi::encoders::{device_name, UNTRAINED_WARNING};
use haidef_wsi::encoders::{Batcher, ImageRef};
use haidef_wsi::wsi::PatchGridOptions;
use std::time::Instant;

/// Embed the patch grid of one level and print each patch's first embedding values.
#[derive(Parser, Debug)]
#[command(version)]
struct Cli {
    #[command(flatten)]
    slide: args::SlideArgs,
    /// Pyramid level (0 = full resolution).
    #[arg(long, default_value_t = 0)]
    level: usize,
    /// Embed at most this many patches.
    #[arg(long)]
    limit: Option<usize>,
    #[command(flatten)]
    model: model_args::ModelArgs,
    /// Patches per batch [default: 8 on CPU, 256 on CUDA].
    #[arg(long)]
    batch: Option<usize>,
    /// f32, f16 or bf16 [default: f32 on CPU, bf16 on CUDA].
    #[arg(long)]
    dtype: Option<String>,
}

fn run(cli: &Cli) -> Result<(), Box<dyn std::error::Error>> {
    let dtype = match cli.dtype.as_deref() {
        None => None,
        Some("f32") => Some(DType::F32),
        Some("f16") => Some(DType::F16),
        Some("bf16") => Some(DType::BF16),
        Some(other) => return Err(format!("--dtype {other}: expected f32, f16 or bf16").into()),
    };
    let model_args::Loaded { entry, model, device, dtype } = cli.model.load(dtype)?;
    let slide = args::open_slide(&cli.slide)?;
    let level = slide.level(cli.level)?;
    let limit = cli.limit.unwrap_or(usize::MAX);
    let batch = cli.batch.unwrap_or(if device.is_cpu() { 8 } else { 256 });
    let mut batcher = Batcher::new(model.input_spec().clone(), batch, device.clone(), dtype)?;
    println!(
        "model {} ({}), device {}, {:?}, level {} ({}x{}), batch {batch}",
        model.model_id(),
        if model.is_trained() { model.weights_id() } else { "UNTRAINED" },
        device_name(&device),
        dtype,
        level.index(),
        level.width(),
        level.height()
    );
    let start = Instant::now();
    let mut pending = Vec::new();
    let mut done = 0usize;
    let mut flush = |pending: &mut Vec<haidef_wsi::wsi::Patch>| -> Result<(), Box<dyn std::error::Error>> {
        if pending.is_empty() {
            return Ok(());
        }
        let images: Vec<ImageRef<'_>> = pending.iter().map(|p| ImageRef::rgb(p.size as usize, p.size as usize, &p.rgb)).collect();
        let emb = model.embed(&batcher.pack(&images)?)?.to_vec2::<f32>()?;
        for (p, e) in pending.iter().zip(&emb) {
            println!("x={:>6} y={:>6}  [{:+.4}, {:+.4}, {:+.4}, {:+.4}, ...]", p.x, p.y, e[0], e[1], e[2], e[3]);
        }
        done += pending.len();
        pending.clear();
        Ok(())
    };
    let size = model.input_spec().width as u32;
    if model.input_spec().height != model.input_spec().width {
        return Err(format!("{} takes {}x{} inputs; patches are square", entry.name, model.input_spec().width, model.input_spec().height).into());
    }
    for patch in level.patch_grid(PatchGridOptions { size, stride: size })?.iter().take(limit) {
        pending.push(patch?);
        if pending.len() == batch {
            flush(&mut pending)?;
        }
    }
    flush(&mut pending)?;
    let secs = start.elapsed().as_secs_f64();
    println!("{done} patches in {secs:.2} s: {:.1} patches/s, {:.0} embeddings/hour", done as f64 / secs, done as f64 / secs * 3600.0);
    if !model.is_trained() {
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
