#![doc = include_str!("../README.md")]
#![warn(missing_docs)]

/// The DICOM whole-slide image reader: slides, levels, regions, patch grids.
pub use haidef_wsi_dicom as wsi;

/// Tensor batching and foundation-model encoders.
pub use haidef_wsi_encoders as encoders;

// The layers, upstream first (docs/ARCHITECTURE.md): errors and input files; the engine and
// the outputs; the job runner; pictures; one folder per modality; cohorts and the server on
// top. A module imports only from modules above it in this list.
#[cfg(feature = "audio-files")]
mod audio;
#[cfg(feature = "cohorts")]
pub mod cohort;
mod engine;
mod error;
mod files;
#[cfg(feature = "image-files")]
mod image;
mod job;
#[cfg(feature = "heatmaps")]
mod maps;
mod output;
#[cfg(feature = "probes")]
pub mod probe;
#[cfg(feature = "serve")]
pub mod serve;
mod slide;
mod zero_shot;

pub use engine::{Input, Source, StageTimes};
pub use error::{PipelineError, Result};
pub use files::Skipped;
pub use job::{Finishing, Job, JobSummary, KeyOf, Modality, Opened, Opening, OutputLayout};
pub use output::parquet::{provenance, ParquetSink};
#[cfg(feature = "icc")]
pub use slide::{adobe_rgb, romm_rgb, ToSrgb};
pub use slide::{choose_level, LevelChoice, PipelineOptions, RunSummary, SlideJob, SlideReport, Slides, UnreadablePatch};

#[cfg(feature = "image-files")]
pub use image::{find_images, read_image, ImageFile, ImageJob, ImageJobSummary, ImageOptions, Images, StoredSamples, DEFAULT_MAX_PIXELS};

#[cfg(feature = "audio-files")]
pub use audio::{
    decode_wav, find_audio, probe_seconds, read_audio, resample, resampled_len, Audio, AudioJob, AudioJobSummary, AudioOptions, AudioReport, Clip, Recording,
    Wav, WindowKey, DEFAULT_MAX_SECONDS,
};
