#![doc = include_str!("../README.md")]
#![warn(missing_docs)]

/// The DICOM whole-slide image reader: slides, levels, regions, patch grids.
pub use haidef_wsi_dicom as wsi;

/// Tensor batching and foundation-model encoders.
pub use haidef_wsi_encoders as encoders;

mod atomic;
pub mod cluster_maps;
mod clusters;
pub mod color;
pub mod engine;
pub mod error;
mod heatmap;
pub mod image_job;
pub mod images;
pub mod pipeline;
pub mod sink;
pub mod slide_source;
pub mod tissue;

pub use error::{PipelineError, Result};
pub use pipeline::{choose_level, LevelChoice, PipelineOptions, RunSummary, SlideJob, StageTimes};
