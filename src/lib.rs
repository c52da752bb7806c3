#![doc = include_str!("../README.md")]
#![warn(missing_docs)]

/// The DICOM whole-slide image reader: slides, levels, regions, patch grids.
pub use haidef_wsi_dicom as wsi;

/// Tensor batching and foundation-model encoders.
pub use haidef_wsi_encoders as encoders;

mod atomic;
#[cfg(feature = "heatmaps")]
pub mod cluster_maps;
#[cfg(feature = "heatmaps")]
mod clusters;
#[cfg(feature = "icc")]
pub mod color;
#[cfg(feature = "cohorts")]
pub mod cohort;
#[cfg(feature = "audio-files")]
pub mod audio;
#[cfg(feature = "audio-files")]
mod audio_guard;
#[cfg(feature = "audio-files")]
pub mod audio_job;
#[cfg(all(feature = "audio-files", feature = "heatmaps"))]
pub mod audio_picture;
pub mod engine;
pub mod error;
pub mod files;
#[cfg(feature = "heatmaps")]
mod heatmap;
#[cfg(feature = "image-files")]
pub mod image_job;
#[cfg(feature = "image-files")]
pub mod images;
pub mod pipeline;
#[cfg(feature = "audio-files")]
pub mod resample;
#[cfg(feature = "serve")]
pub mod serve;
pub mod sink;
pub mod slide_source;
pub mod tissue;
#[cfg(feature = "audio-files")]
pub mod wav;
pub mod zero_shot;
#[cfg(feature = "heatmaps")]
mod score_maps;

pub use error::{PipelineError, Result};
pub use pipeline::{choose_level, LevelChoice, PipelineOptions, RunSummary, SlideJob, StageTimes};
