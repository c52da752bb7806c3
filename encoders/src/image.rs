//! Images as the batcher takes them: borrowed, row-major, interleaved channels, with 8-bit,
//! 16-bit or f32 samples.

/// The samples of an image, in its stored type.
#[derive(Debug, Clone, Copy)]
#[non_exhaustive]
pub enum Samples<'a> {
    /// 8-bit samples.
    U8(&'a [u8]),
    /// 16-bit samples of which `bits_stored` (8..=16) are used, as radiographs store them
    /// (DICOM BitsStored); values above 2^bits_stored − 1 are an error.
    U16 {
        /// The samples.
        data: &'a [u16],
        /// Bits used per sample.
        bits_stored: u8,
    },
    /// Floating-point samples (spectrograms, pre-scaled data).
    F32(&'a [f32]),
}

impl Samples<'_> {
    /// Number of samples.
    pub fn len(&self) -> usize {
        match self {
            Samples::U8(d) => d.len(),
            Samples::U16 { data, .. } => data.len(),
            Samples::F32(d) => d.len(),
        }
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The largest value the samples can hold (the divisor of [`crate::Range::Full`]):
    /// 255, 2^bits_stored − 1, or 1 for f32.
    pub fn full_scale(&self) -> f32 {
        match self {
            Samples::U8(_) => 255.0,
            Samples::U16 { bits_stored, .. } => ((1u32 << bits_stored) - 1) as f32,
            Samples::F32(_) => 1.0,
        }
    }

    /// `u8`, `u16 (12 bits stored)` or `f32`, for messages.
    pub fn describe(&self) -> String {
        match self {
            Samples::U8(_) => "u8".into(),
            Samples::U16 { bits_stored, .. } => format!("u16 ({bits_stored} bits stored)"),
            Samples::F32(_) => "f32".into(),
        }
    }
}

/// A borrowed image: `width × height` pixels of `channels` interleaved samples (1 grey, 3 RGB,
/// 4 RGBA), row-major.
#[derive(Debug, Clone, Copy)]
pub struct ImageRef<'a> {
    /// Width in pixels.
    pub width: usize,
    /// Height in pixels.
    pub height: usize,
    /// Interleaved channels per pixel.
    pub channels: usize,
    /// `width * height * channels` samples.
    pub samples: Samples<'a>,
}

impl<'a> ImageRef<'a> {
    /// An RGB image with 8-bit samples.
    pub fn rgb(width: usize, height: usize, data: &'a [u8]) -> Self {
        ImageRef { width, height, channels: 3, samples: Samples::U8(data) }
    }

    /// An 8-bit image with `channels` interleaved channels.
    pub fn u8(width: usize, height: usize, channels: usize, data: &'a [u8]) -> Self {
        ImageRef { width, height, channels, samples: Samples::U8(data) }
    }

    /// A 16-bit image with `channels` interleaved channels, `bits_stored` of 16 used.
    pub fn u16(width: usize, height: usize, channels: usize, data: &'a [u16], bits_stored: u8) -> Self {
        ImageRef { width, height, channels, samples: Samples::U16 { data, bits_stored } }
    }

    /// An f32 image with `channels` interleaved channels.
    pub fn f32(width: usize, height: usize, channels: usize, data: &'a [f32]) -> Self {
        ImageRef { width, height, channels, samples: Samples::F32(data) }
    }
}
