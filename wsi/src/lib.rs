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

mod attrs;
pub mod cache;
mod compose;
pub mod decode;
#[cfg(feature = "dicomweb")]
pub mod dicomweb;
pub mod error;
pub mod frame_index;
pub mod frame_source;
pub mod image_info;
pub mod level;
pub mod local_file;
pub mod patches;
mod pool;
pub mod rgb;
pub mod slide;

pub use cache::{CacheKey, SlideCache, DEFAULT_CACHE_BYTES};
pub use decode::{Codec, FrameDecoder};
#[cfg(feature = "dicomweb")]
pub use dicomweb::{Auth, DicomWebOptions};
pub use error::{Result, WsiError};
pub use frame_index::FrameIndex;
pub use frame_source::FrameSource;
pub use image_info::{ImageFlavor, ImageInfo, Organization};
pub use level::{Level, OutOfBounds};
pub use patches::{Patch, PatchGrid, PatchGridOptions, PatchRows};
pub use rgb::RgbImage;
pub use slide::{AssociatedImage, AssociatedKind, OpenOptions, Slide};
