//! The model arguments shared by the examples that embed, as a clap argument group.

use clap::Args;
use haidef_wsi::encoders::candle::{DType, Device};
use haidef_wsi::encoders::{parse_device, Encoder, UNTRAINED_WARNING};
use haidef_wsi::encoders::{registry, ModelEntry};
use std::path::PathBuf;

/// Which model to run, with which weights, where.
#[derive(Args, Debug)]
pub struct ModelArgs {
    /// Model name (`embed_images --help` lists them).
    #[arg(long, default_value = registry::DEFAULT_MODEL)]
    pub model: String,
    /// The model's weights: a .safetensors file, or for MedSigLIP the checkpoint folder
    /// (config.json, model.safetensors, spiece.model); without them an untrained stand-in runs,
    /// loudly.
    #[arg(long)]
    pub weights: Option<PathBuf>,
    /// cpu, cuda or cuda:N.
    #[arg(long, default_value = "cpu")]
    pub device: String,
}

/// A model ready to embed.
pub struct Loaded {
    /// Its registry entry.
    pub entry: ModelEntry,
    /// The encoder.
    pub model: Box<dyn Encoder>,
    /// Where it runs.
    pub device: Device,
    /// What it computes in.
    pub dtype: DType,
}

impl ModelArgs {
    /// Opens the device and the model, in `dtype` or by default f32 on CPU and bf16 on CUDA;
    /// warns loudly when no weights were given.
    pub fn load(&self, dtype: Option<DType>) -> Result<Loaded, Box<dyn std::error::Error>> {
        let device = parse_device(&self.device)?;
        let dtype = dtype.unwrap_or(if device.is_cpu() { DType::F32 } else { DType::BF16 });
        let entry = registry::find(&self.model)?;
        if self.weights.is_none() {
            eprintln!("\n{UNTRAINED_WARNING}\n");
        }
        let model = entry.open(self.weights.as_deref(), &device, dtype)?;
        Ok(Loaded { entry, model, device, dtype })
    }
}
