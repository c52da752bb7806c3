//! Embeds audio recordings (WAV, FLAC, Ogg Vorbis, MP3; any rate, any number of channels) with
//! HeAR: each recording is mixed to mono, resampled to 16 kHz and cut into 2 s windows every
//! `--hop` seconds (the last zero-padded and flagged). One Parquet row per window: `path`,
//! `start_s`, `end_s`, `padded`, `embedding` (512 floats). A file that cannot be used is
//! reported, skipped and listed in the output's metadata (`failed_files`); the others go on.
//!
//! `cargo run --release --example embed_audio -- <files or folders>... --out audio.parquet [--weights DIR] [--hop S] [--device D] [--picture P.png]`

use clap::Parser;
use haidef_wsi::encoders::candle::DType;
use haidef_wsi::encoders::{device_name, parse_device, registry, UNTRAINED_WARNING};
use haidef_wsi::{find_audio, DEFAULT_MAX_SECONDS};
use haidef_wsi::{AudioJob, AudioOptions};
use indicatif::{ProgressBar, ProgressStyle};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

/// Embed health-audio recordings (coughs, breaths, speech) with HeAR into a Parquet file.
#[derive(Parser, Debug)]
#[command(version)]
struct Cli {
    /// Audio files, or folders searched recursively for .wav, .flac, .ogg, .oga and .mp3 files.
    #[arg(required = true)]
    inputs: Vec<PathBuf>,
    /// The Parquet file to write.
    #[arg(long)]
    out: PathBuf,
    /// The google/hear-pytorch checkpoint folder (config.json, model.safetensors; gated on
    /// Hugging Face) or its .safetensors file; without it an untrained stand-in runs, loudly.
    #[arg(long)]
    weights: Option<PathBuf>,
    /// The audio model.
    #[arg(long, default_value = "hear")]
    model: String,
    /// Seconds between window starts (windows are 2 s).
    #[arg(long, default_value_t = 1.0)]
    hop: f64,
    /// cpu, cuda or cuda:N.
    #[arg(long, default_value = "cpu")]
    device: String,
    /// Windows per batch.
    #[arg(long, default_value_t = 32)]
    batch: usize,
    /// Refuse recordings longer than this many seconds (each is resampled whole).
    #[arg(long, default_value_t = DEFAULT_MAX_SECONDS)]
    max_seconds: f64,
    /// Also draw the first recording's spectrogram beside its windows' embedding similarity.
    #[arg(long)]
    picture: Option<PathBuf>,
}

fn run(cli: Cli) -> Result<bool, Box<dyn std::error::Error>> {
    let device = parse_device(&cli.device)?;
    let dtype = if device.is_cpu() { DType::F32 } else { DType::BF16 };
    let entry = registry::find(&cli.model)?;
    if cli.weights.is_none() {
        eprintln!("\n{UNTRAINED_WARNING}\n");
    }
    let model = entry.open(cli.weights.as_deref(), &device, dtype)?;
    let files = find_audio(&cli.inputs)?;
    if files.is_empty() {
        return Err("no audio files (.wav, .flac, .ogg, .oga, .mp3) found in the paths given".into());
    }
    println!(
        "{} files, model {} ({}), device {} {dtype:?}, batch {}, 2 s windows every {} s",
        files.len(),
        entry.name,
        if model.is_trained() { model.weights_id() } else { "UNTRAINED" },
        device_name(&device),
        cli.batch,
        cli.hop
    );
    if let Some(dir) = cli.out.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).map_err(|e| format!("{}: cannot create: {e}", dir.display()))?;
    }
    let cancel = Arc::new(AtomicBool::new(false));
    let flag = cancel.clone();
    ctrlc::set_handler(move || flag.store(true, Ordering::Relaxed))?;
    let bar = ProgressBar::new(0);
    bar.set_style(ProgressStyle::with_template("{spinner} [{elapsed_precise}] {bar:40} {pos}/{len} windows  {per_sec}  ETA {eta}").expect("template"));
    let progress = |done: usize, expected: usize| {
        bar.set_length(expected.max(done) as u64);
        bar.set_position(done as u64);
    };
    let on_skip = |s: &haidef_wsi::Skipped| bar.suspend(|| eprintln!("skipped: {}", s.error));
    let opts = AudioOptions::default().hop_seconds(cli.hop).max_seconds(cli.max_seconds);
    let mut job = AudioJob::new(files, model.as_ref(), &cli.out)
        .model_name(entry.name)
        .options(opts)
        .batch_size(cli.batch)
        .cancel(&cancel)
        .progress(&progress)
        .on_skip(&on_skip);
    if let Some(p) = &cli.picture {
        job = job.picture(p);
    }
    let result = job.run();
    bar.finish_and_clear();
    let s = result?;
    println!(
        "{} windows embedded, {} files skipped; wrote {} in {:.2} s (busy: read {:.2} s, encode {:.2} s, write {:.3} s)",
        s.embedded,
        s.skipped.len(),
        s.output().display(),
        s.seconds,
        s.stages.read.as_secs_f64(),
        s.stages.encode.as_secs_f64(),
        s.stages.write.as_secs_f64()
    );
    if let Some(p) = &s.picture {
        println!("picture: {}", p.display());
    }
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
            eprintln!("error: no recording could be embedded (each is listed above and in the file's failed_files)");
            std::process::exit(1);
        }
        Err(e) => {
            eprintln!("error: {e}");
            std::process::exit(1);
        }
    }
}
