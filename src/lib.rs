#![doc = include_str!("../README.md")]
#![warn(missing_docs)]

/// The DICOM whole-slide image reader: slides, levels, regions, patch grids.
pub use haidef_wsi_dicom as wsi;

/// Tensor batching and foundation-model encoders.
pub use haidef_wsi_encoders as encoders;
