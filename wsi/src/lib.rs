//! # haidef-wsi-dicom
//!
//! Reads DICOM VL Whole Slide Microscopy images (the pyramids that scanners, OrthancWSIDicomizer
//! and wsidicom write) from local Part 10 files: the pyramid and associated images, pixel
//! spacing, frame index (TILED_FULL and per-frame positions), lazy frame reads, JPEG / JPEG 2000
//! / uncompressed decoding, regions across frame boundaries and the 224×224 patch grid that
//! Path Foundation embeds.
//!
//! ```no_run
//! use haidef_wsi_dicom::{Slide, PatchGridOptions};
//! let slide = Slide::open("fixtures/slides/ihc-full")?;
//! let level = slide.level_for_mpp(1.0)?;
//! let region = level.read_region(100, 100, 224, 224)?;
//! assert_eq!(region.data.len(), 224 * 224 * 3);
//! for patch in level.patch_grid(PatchGridOptions::default())?.iter() {
//!     let patch = patch?;
//!     println!("{} {} {}", patch.x, patch.y, patch.rgb.len());
//! }
//! # Ok::<(), haidef_wsi_dicom::WsiError>(())
//! ```
#![warn(missing_docs)]

// Every module is private; each public item is re-exported once, below, at the crate root.
mod attrs;
mod cache;
mod compose;
mod decode;
#[cfg(feature = "dicomweb")]
mod dicomweb;
mod error;
mod frame_index;
mod frame_source;
mod image_info;
mod level;
mod local_file;
mod patches;
mod pool;
mod rgb;
mod slide;

pub use cache::{CacheKey, SlideCache, DEFAULT_CACHE_BYTES};
pub use decode::{transfer_syntax_name, Codec, FrameDecoder};
#[cfg(feature = "dicomweb")]
pub use dicomweb::{parse_series_url, Auth, DicomWebOptions, StopWhen, UrlAllowlist};
pub use error::{Result, TagName, WsiError};
pub use frame_index::FrameIndex;
pub use frame_source::FrameSource;
pub use image_info::{ImageFlavor, ImageInfo, Organization};
pub use level::{Level, OutOfBounds, Tile};
pub use patches::{Patch, PatchGrid, PatchGridOptions, PatchRows};
pub use rgb::RgbImage;
pub use slide::{AssociatedImage, AssociatedKind, OpenOptions, Slide};

// Not part of the API: public only for the decoder comparison tests and benches and for the
// fuzz harness (fuzz/harness/wsi.rs, replayed by tests/fuzz_regressions.rs).
#[doc(hidden)]
pub use decode::decode_jpeg_rgb;
#[cfg(feature = "dicomweb")]
#[doc(hidden)]
pub use dicomweb::{dataset_from_json, parse_body, parse_content_type, MultipartType, Part};
