//! Image files (PNG, JPEG; 8/16-bit, EXIF orientation) as inputs, and the image job
//! ([`ImageJob`]).

mod job;
mod read;

pub use job::{ImageJob, ImageJobSummary, ImageOptions, Images};
pub use read::{find_images, read_image, ImageFile, StoredSamples, DEFAULT_MAX_PIXELS};
