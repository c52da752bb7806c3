//! Embeds image files (PNG, JPEG: 8/16-bit, grey/RGB/RGBA, EXIF orientation applied) with any
//! registered model and writes one Parquet row per image: `path`, `width`, `height` (as
//! displayed) and `embedding`. A file that cannot be used is reported, skipped and listed in the
//! output's metadata (`failed_files`); the others go on.
//!
//! `cargo run --release --example embed_images -- <files or folders>... --out F.parquet [--model NAME] [--weights W] [--batch B] [--device D]`

use clap::Parser;
use haidef_wsi::encoders::batch::Batcher;
use haidef_wsi::encoders::candle::DType;
use haidef_wsi::encoders::{device_name, parse_device, registry, UNTRAINED_WARNING};
use haidef_wsi::images::{find_images, read_image, ImageFile, DEFAULT_MAX_PIXELS};
use haidef_wsi::sink::ParquetSink;
use indicatif::{ProgressBar, ProgressStyle};
use rayon::prelude::*;
use std::collections::HashMap;
use std::path::PathBuf;
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
    /// Model name (see the list below).
    #[arg(long, default_value = registry::DEFAULT_MODEL)]
    model: String,
    /// The model's weights (.safetensors); without them an untrained stand-in runs, loudly.
    #[arg(long)]
    weights: Option<PathBuf>,
    /// Images per batch [default: 8 on CPU, 256 on CUDA].
    #[arg(long)]
    batch: Option<usize>,
    /// cpu, cuda or cuda:N.
    #[arg(long, default_value = "cpu")]
    device: String,
    /// Refuse images with more pixels than this (decompression bombs).
    #[arg(long, default_value_t = DEFAULT_MAX_PIXELS)]
    max_pixels: u64,
}

fn models_help() -> String {
    let mut s = String::from("Models:\n");
    for m in registry::models() {
        s.push_str(&format!("  {:<22} {} [input {}]\n", m.name, m.summary, m.input.describe()));
    }
    s
}

fn run(cli: Cli) -> Result<bool, Box<dyn std::error::Error>> {
    let entry = registry::find(&cli.model)?;
    let device = parse_device(&cli.device)?;
    let dtype = if device.is_cpu() { DType::F32 } else { DType::BF16 };
    if cli.weights.is_none() {
        eprintln!("\n{UNTRAINED_WARNING}\n");
    }
    let model = entry.open(cli.weights.as_deref(), &device, dtype)?;
    let files = find_images(&cli.inputs)?;
    if files.is_empty() {
        return Err("no PNG or JPEG files found in the paths given".into());
    }
    let batch = cli.batch.unwrap_or(if device.is_cpu() { 8 } else { 256 });
    let mut batcher = Batcher::new(model.input_spec().clone(), batch, device.clone(), dtype)?;
    println!(
        "{} files, model {} ({}), device {} {dtype:?}, batch {batch}, input {}",
        files.len(),
        entry.name,
        if model.is_trained() { model.weights_id() } else { "UNTRAINED" },
        device_name(&device),
        model.input_spec().describe()
    );

    let mut meta = HashMap::from([
        ("model".to_string(), entry.name.to_string()),
        ("model_id".to_string(), model.model_id().to_string()),
        ("weights_sha256".to_string(), model.weights_id().to_string()),
        ("library_version".to_string(), format!("haidef-wsi {}", env!("CARGO_PKG_VERSION"))),
        ("input_scaling".to_string(), model.input_spec().describe()),
    ]);
    if !model.is_trained() {
        meta.insert("warning".to_string(), UNTRAINED_WARNING.to_string());
    }
    let keys = vec![
        arrow_schema::Field::new("path", arrow_schema::DataType::Utf8, false),
        arrow_schema::Field::new("width", arrow_schema::DataType::UInt32, false),
        arrow_schema::Field::new("height", arrow_schema::DataType::UInt32, false),
    ];
    if let Some(dir) = cli.out.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).map_err(|e| format!("{}: cannot create: {e}", dir.display()))?;
    }
    let mut sink = ParquetSink::create_with(&cli.out, keys, &model.output().shape(), meta)?;
    let mut failed: Vec<serde_json::Value> = Vec::new();
    let mut embedded = 0usize;
    let bar = ProgressBar::new(files.len() as u64);
    bar.set_style(ProgressStyle::with_template("{spinner} [{elapsed_precise}] {bar:40} {pos}/{len} images  {per_sec}  ETA {eta}").expect("template"));
    for chunk in files.chunks(batch) {
        // Decode in parallel; check each image against the model's input on its own, so that
        // one bad file costs only itself.
        let decoded: Vec<Result<ImageFile, (String, String)>> = chunk
            .par_iter()
            .map(|p| {
                let img = read_image(p, cli.max_pixels).map_err(|e| (p.display().to_string(), e.to_string()))?;
                match batcher.validate(0, &img.image_ref()) {
                    Ok(()) => Ok(img),
                    Err(e) => Err((p.display().to_string(), format!("{}: {}", p.display(), e.to_string().trim_start_matches("input 0: ")))),
                }
            })
            .collect();
        let mut good = Vec::new();
        for d in decoded {
            match d {
                Ok(img) => good.push(img),
                Err((path, error)) => {
                    bar.suspend(|| eprintln!("skipped: {error}"));
                    failed.push(serde_json::json!({"path": path, "error": error}));
                }
            }
        }
        if !good.is_empty() {
            let refs: Vec<_> = good.iter().map(|i| i.image_ref()).collect();
            let emb = model.embed(&batcher.pack(&refs)?)?.flatten_all()?.to_vec1::<f32>()?;
            let columns: Vec<arrow_array::ArrayRef> = vec![
                Arc::new(arrow_array::StringArray::from_iter_values(good.iter().map(|i| i.path.display().to_string()))),
                Arc::new(arrow_array::UInt32Array::from_iter_values(good.iter().map(|i| i.width as u32))),
                Arc::new(arrow_array::UInt32Array::from_iter_values(good.iter().map(|i| i.height as u32))),
            ];
            sink.write_columns(columns, &emb)?;
            embedded += good.len();
        }
        bar.inc(chunk.len() as u64);
    }
    bar.finish_and_clear();
    // Known only now: appended to the file's key-value metadata when it is closed.
    sink.append_metadata("files_embedded", &embedded.to_string());
    sink.append_metadata("failed_files", &serde_json::Value::Array(failed.clone()).to_string());
    let path = sink.finish()?;
    println!("{embedded} images embedded, {} skipped; wrote {}", failed.len(), path.display());
    if !model.is_trained() {
        println!("{UNTRAINED_WARNING}");
    }
    Ok(embedded > 0)
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
