//! The slide job's options, shared by the examples that run it (one slide, or a cohort), as a
//! clap argument group.

use clap::Args;
use haidef_wsi::encoders::candle::Device;
use haidef_wsi::{LevelChoice, PipelineOptions};

/// Which level and patches to embed, and the heatmap's clustering.
#[derive(Args, Debug)]
pub struct PipelineArgs {
    /// Pyramid level to embed (0 = full resolution).
    #[arg(long, conflicts_with = "mpp")]
    pub level: Option<usize>,
    /// Embed the level nearest this many µm per pixel [default: 1.0, about 10x].
    #[arg(long)]
    pub mpp: Option<f64>,
    /// k-means clusters.
    #[arg(long, default_value_t = 6)]
    pub k: usize,
    /// Embed patches with at least this tissue fraction.
    #[arg(long, default_value_t = 0.5)]
    pub min_tissue: f32,
    /// Embed every patch, skipping tissue detection.
    #[arg(long)]
    pub all_patches: bool,
    /// Convert patches from the slide's ICC profile to sRGB before embedding.
    #[arg(long)]
    pub icc_to_srgb: bool,
    /// Patches per batch [default: 32 on CPU, 256 on CUDA].
    #[arg(long)]
    pub batch: Option<usize>,
    /// k-means seed.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// A zero-shot prompt (repeatable; models with a text side: --model medsiglip --weights
    /// DIR): adds a score column named after it and score-<n>-<prompt>.png.
    #[arg(long = "prompt", value_name = "TEXT")]
    pub prompts: Vec<String>,
    /// Leave out the patches over frames that cannot be read or decoded (listed in the Parquet
    /// metadata under `unreadable_patches`) instead of stopping at the first.
    #[arg(long)]
    pub skip_unreadable_frames: bool,
}

impl PipelineArgs {
    /// The options.
    pub fn options(&self) -> PipelineOptions {
        let level = match self.level {
            Some(l) => LevelChoice::Index(l),
            None => LevelChoice::Mpp(self.mpp.unwrap_or(1.0)),
        };
        PipelineOptions::default()
            .level(level)
            .min_tissue(self.min_tissue)
            .all_patches(self.all_patches)
            .k(self.k)
            .seed(self.seed)
            .icc_to_srgb(self.icc_to_srgb)
            .prompts(self.prompts.clone())
            .skip_unreadable_frames(self.skip_unreadable_frames)
    }

    /// The batch size: `--batch`, or the default for `device`.
    pub fn batch_size(&self, device: &Device) -> usize {
        self.batch.unwrap_or(if device.is_cpu() { 32 } else { 256 })
    }
}
