//! Applies a classifier trained by `train_probe` to embeddings: writes the key column and one
//! probability column per class (`p_<class>`; `mil_p_<class>` for slide models with MIL) per
//! row or per slide. For slide patch files it also draws, per slide, the probability of a class
//! on the patch grid (`<stem>-<slide>-p_<class>.png`), the MIL attention
//! (`<stem>-<slide>-attention.png`) and a GeoJSON of the patches with their probabilities and
//! k-means cluster, which QuPath imports as detections (File → Import objects).
//!
//! `cargo run --release --example predict_probe -- MODEL_DIR EMBEDDINGS --out F.parquet [--class NAME] [--k 8]`

#[path = "common/threads.rs"]
mod threads;

use clap::Parser;
use haidef_wsi::encoders::parse_device;
use haidef_wsi::probe::{self, PredictOptions};
use std::path::PathBuf;

/// Apply a trained classifier to embeddings.
#[derive(Parser, Debug)]
#[command(version)]
struct Cli {
    /// The folder train_probe wrote.
    model: PathBuf,
    /// An embeddings Parquet file, or a folder of them.
    embeddings: PathBuf,
    /// The Parquet file of predictions to write (maps and GeoJSON go beside it).
    #[arg(long)]
    out: PathBuf,
    /// The embedding column.
    #[arg(long, default_value = "embedding")]
    embedding_column: String,
    /// The class whose probability the maps show [default: the second of two classes; all of more].
    #[arg(long)]
    class: Option<String>,
    /// k-means clusters in the GeoJSON's measurements (0: none).
    #[arg(long, default_value_t = 8)]
    k: usize,
    /// Device of the MIL model: cpu, cuda, cuda:N.
    #[arg(long, default_value = "cpu")]
    device: String,
}

fn run(cli: Cli) -> Result<(), Box<dyn std::error::Error>> {
    let device = parse_device(&cli.device)?;
    let model = probe::load(&cli.model, &device)?;
    let rows = probe::read_embeddings(&cli.embeddings, &model.key_column, &cli.embedding_column)?;
    let done = probe::predict(&model, &rows, &cli.out, &PredictOptions { class: cli.class, k: cli.k, seed: 0 })?;
    println!("{} rows of predictions ({}) written to {}", done.rows, model.classes.join(", "), cli.out.display());
    for f in &done.files {
        println!("  {}", f.display());
    }
    Ok(())
}

fn main() {
    threads::pin_candle_threads();
    if let Err(e) = run(Cli::parse()) {
        eprintln!("error: {e}");
        std::process::exit(1);
    }
}
