//! Errors of the reader: every variant names where the problem is (file or URL, frame, tag) and
//! what was expected, so that a user can act on it.

use std::fmt;

/// Where a problem was found: a file path or a DICOMweb instance URL.
pub(crate) type Location = String;

/// A DICOM tag with its keyword, printed as `PixelData (7FE0,0010)`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct TagName {
    /// The tag itself.
    pub tag: dicom_core::Tag,
    /// Its DICOM keyword.
    pub name: &'static str,
}

impl fmt::Display for TagName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} ({:04X},{:04X})", self.name, self.tag.0, self.tag.1)
    }
}

/// Everything that can go wrong while opening or reading a slide.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum WsiError {
    /// The operating system refused a read.
    #[error("{location}: I/O error: {source}")]
    Io {
        /// File that could not be read.
        location: Location,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
    /// The file is not DICOM Part 10, or its header cannot be parsed.
    #[error("{location}: not a readable DICOM Part 10 file: {message}")]
    NotDicom {
        /// File concerned.
        location: Location,
        /// What the DICOM parser said.
        message: String,
    },
    /// A valid DICOM file that is not a VL Whole Slide Microscopy image.
    #[error(
        "{location}: not a VL Whole Slide Microscopy image (SOP Class {sop_class}, expected \
         1.2.840.10008.5.1.4.1.1.77.1.6)"
    )]
    NotWsi {
        /// File concerned.
        location: Location,
        /// The SOP Class UID it has.
        sop_class: String,
    },
    /// A required attribute is absent.
    #[error("{location}: required attribute {tag} is missing")]
    MissingAttribute {
        /// File concerned.
        location: Location,
        /// Which attribute.
        tag: TagName,
    },
    /// An attribute is present but has a value we cannot use.
    #[error("{location}: attribute {tag}: {problem}")]
    InvalidAttribute {
        /// File concerned.
        location: Location,
        /// Which attribute.
        tag: TagName,
        /// What is wrong and what was expected.
        problem: String,
    },
    /// The pixel data is stored in a transfer syntax this library cannot decode.
    #[error(
        "{location}: transfer syntax {uid} ({name}) is not supported; supported are JPEG Baseline \
         (1.2.840.10008.1.2.4.50), JPEG 2000 (1.2.840.10008.1.2.4.90/.91) and Explicit/Implicit \
         VR Little Endian (1.2.840.10008.1.2.1/1.2.840.10008.1.2)"
    )]
    UnsupportedTransferSyntax {
        /// File concerned.
        location: Location,
        /// Transfer syntax UID.
        uid: String,
        /// Its name, when known.
        name: String,
    },
    /// Pixel data layout the library does not handle (bit depth, samples per pixel, ...).
    #[error("{location}: unsupported pixel format: {problem}")]
    UnsupportedPixelFormat {
        /// File concerned.
        location: Location,
        /// What is unsupported.
        problem: String,
    },
    /// The Pixel Data element or its offset table is damaged.
    #[error("{location}: pixel data: {problem}")]
    PixelData {
        /// File concerned.
        location: Location,
        /// What is wrong.
        problem: String,
    },
    /// One frame cannot be read or decoded.
    #[error("{location}: frame {frame} (1-based): {problem}")]
    Frame {
        /// File concerned.
        location: Location,
        /// 1-based frame number, as DICOM counts frames.
        frame: u32,
        /// What is wrong.
        problem: String,
        /// The I/O error underneath, when the read itself failed.
        #[source]
        source: Option<std::io::Error>,
    },
    /// A TILED_FULL image whose frame count does not fill its tile grid.
    #[error(
        "{location}: TILED_FULL image has NumberOfFrames {found} but its {tiles_x}x{tiles_y} tile \
         grid ({width}x{height} px in {tile_width}x{tile_height} tiles) needs {expected}"
    )]
    FrameCountMismatch {
        /// File concerned.
        location: Location,
        /// NumberOfFrames in the file.
        found: u32,
        /// Frames needed by the grid.
        expected: u32,
        /// Tiles across.
        tiles_x: u32,
        /// Tiles down.
        tiles_y: u32,
        /// TotalPixelMatrixColumns.
        width: u32,
        /// TotalPixelMatrixRows.
        height: u32,
        /// Columns.
        tile_width: u32,
        /// Rows.
        tile_height: u32,
    },
    /// A requested rectangle is not inside the level.
    #[error(
        "region x={x} y={y} {width}x{height} is not inside level {level} ({level_width}x\
         {level_height} px); ask for padding (OutOfBounds::PadWhite, or --pad in the examples) to fill the outside with white"
    )]
    RegionOutOfBounds {
        /// Level index.
        level: usize,
        /// Region origin x.
        x: i64,
        /// Region origin y.
        y: i64,
        /// Region width.
        width: u32,
        /// Region height.
        height: u32,
        /// Level width.
        level_width: u32,
        /// Level height.
        level_height: u32,
    },
    /// No pyramid could be assembled from the given inputs.
    #[error("{location}: no slide found: {problem}")]
    NoSlide {
        /// Folder or files given.
        location: Location,
        /// Why not.
        problem: String,
    },
    /// A DICOMweb request failed or its answer was unusable (the location never holds
    /// credentials).
    #[error("{location}: DICOMweb: {problem}")]
    DicomWeb {
        /// URL of the request.
        location: Location,
        /// What went wrong and what to do.
        problem: String,
    },
    /// The DICOMweb server refused the credentials (HTTP 401 or 403).
    #[error("{location}: HTTP {status}: not authorised; check the credentials (--basic-auth user:pass or --bearer-token)")]
    DicomWebDenied {
        /// URL of the request.
        location: Location,
        /// 401 or 403.
        status: u16,
    },
    /// A URL off the client's allowlist ([`crate::DicomWebOptions::allowlist`]),
    /// or a redirect to one: nothing was sent to it.
    #[error("{location}: refused: {problem}")]
    DicomWebRefused {
        /// URL of the request (without user-info or query).
        location: Location,
        /// Why.
        problem: String,
    },
    /// A caller asked for something that does not exist or makes no sense.
    #[error("invalid argument: {0}")]
    InvalidArgument(String),
}

/// Result type of this crate.
pub type Result<T, E = WsiError> = std::result::Result<T, E>;

impl WsiError {
    pub(crate) fn io(location: impl Into<Location>, source: std::io::Error) -> Self {
        WsiError::Io { location: location.into(), source }
    }

    pub(crate) fn frame(location: impl Into<Location>, frame_index: u32, problem: impl Into<String>) -> Self {
        WsiError::Frame { location: location.into(), frame: frame_index + 1, problem: problem.into(), source: None }
    }

    pub(crate) fn frame_io(location: impl Into<Location>, frame_index: u32, problem: impl Into<String>, source: std::io::Error) -> Self {
        WsiError::Frame { location: location.into(), frame: frame_index + 1, problem: problem.into(), source: Some(source) }
    }

    pub(crate) fn pixel_data(location: impl Into<Location>, problem: impl Into<String>) -> Self {
        WsiError::PixelData { location: location.into(), problem: problem.into() }
    }
}
