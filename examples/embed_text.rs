//! Embeds texts with a model whose texts and images share one embedding space (MedSigLIP) and
//! writes one Parquet row per text: `text` and `embedding` (not normalised, as transformers'
//! `get_text_features`). Texts are tokenized as Google's MedSigLIP serving does (64 tokens).
//!
//! `cargo run --release --example embed_text -- "tumor" "normal tissue" --model medsiglip --weights DIR --out texts.parquet`

#[path = "common/model_args.rs"]
mod model_args;

use arrow_array::{ArrayRef, StringArray};
use arrow_schema::{DataType, Field};
use clap::Parser;
use haidef_wsi::{provenance, ParquetSink};
use std::path::PathBuf;
use std::sync::Arc;

/// Embed texts (prompts) with MedSigLIP's text tower into a Parquet file.
#[derive(Parser, Debug)]
#[command(version)]
struct Cli {
    /// The texts.
    #[arg(required = true)]
    texts: Vec<String>,
    /// The Parquet file to write.
    #[arg(long)]
    out: PathBuf,
    #[command(flatten)]
    model: model_args::ModelArgs,
}

fn run(cli: &Cli) -> Result<(), Box<dyn std::error::Error>> {
    let model_args::Loaded { entry, model, device, dtype } = cli.model.load(None)?;
    eprintln!("model {} on {} ({dtype:?})", entry.name, haidef_wsi::encoders::device_name(&device));
    let text = model.text_encoder().ok_or_else(|| format!("{} has no text side; use --model medsiglip", model.model_id()))?;
    let refs: Vec<&str> = cli.texts.iter().map(String::as_str).collect();
    let embeddings = text.embed_texts(&refs)?;
    let (n, dim) = embeddings.dims2()?;
    let values = embeddings.flatten_all()?.to_vec1::<f32>()?;
    let mut meta = provenance(model.as_ref());
    meta.insert("content".to_string(), "text embeddings".to_string());
    let mut sink = ParquetSink::create(&cli.out, vec![Field::new("text", DataType::Utf8, false)], &[dim], meta)?;
    sink.write(vec![Arc::new(StringArray::from(cli.texts.clone())) as ArrayRef], &values)?;
    let path = sink.finish()?;
    println!("{n} texts embedded ({dim}-d); wrote {}", path.display());
    if !model.is_trained() {
        println!("{}", haidef_wsi::encoders::UNTRAINED_WARNING);
    }
    Ok(())
}

fn main() {
    let cli = Cli::parse();
    if let Err(e) = run(&cli) {
        eprintln!("error: {e}");
        std::process::exit(1);
    }
}
