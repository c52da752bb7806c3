//! Where the stored bytes of frames come from: a local file or a DICOMweb server.

use crate::error::Result;

/// Gives the stored (still compressed) bytes of frames of one instance.
pub trait FrameSource: Send + Sync + std::fmt::Debug {
    /// Bytes of frame `index` (0-based) exactly as stored: a JPEG / JPEG 2000 codestream, or raw
    /// native pixels.
    fn frame_bytes(&self, index: u32) -> Result<Vec<u8>>;

    /// Hint that these frames will be read soon; sources that fetch over a network batch them.
    fn prefetch(&self, _indices: &[u32]) {}

    /// File path or URL, for messages.
    fn location(&self) -> &str;
}
