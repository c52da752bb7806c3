//! Slides: choosing the level, the tissue mask, the patch source, ICC → sRGB, and the slide
//! job ([`SlideJob`]).

#[cfg(feature = "icc")]
mod color;
mod job;
mod source;
mod tissue;

#[cfg(feature = "icc")]
pub use color::{adobe_rgb, romm_rgb, ToSrgb};
pub use job::{choose_level, LevelChoice, PipelineOptions, RunSummary, SlideJob, SlideReport, Slides};
pub use source::UnreadablePatch;
