//! A plain RGB8 image buffer.

/// An 8-bit RGB image, row-major, 3 bytes per pixel, no padding.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RgbImage {
    /// Width in pixels.
    pub width: u32,
    /// Height in pixels.
    pub height: u32,
    /// `width * height * 3` bytes.
    pub data: Vec<u8>,
}

impl RgbImage {
    /// A white image (the colour of empty glass, and of absent tiles).
    pub fn white(width: u32, height: u32) -> Self {
        RgbImage { width, height, data: vec![255; width as usize * height as usize * 3] }
    }

    /// The pixel at (x, y).
    pub fn pixel(&self, x: u32, y: u32) -> [u8; 3] {
        let i = (y as usize * self.width as usize + x as usize) * 3;
        [self.data[i], self.data[i + 1], self.data[i + 2]]
    }
}

/// Copies the rectangle `src_rect` = (x, y, w, h) of a `src_w`-wide RGB8 buffer into `dst` (a
/// `dst_w`-wide RGB8 buffer) at (dx, dy).
#[allow(clippy::too_many_arguments)]
pub(crate) fn copy_rect(
    src: &[u8],
    src_w: usize,
    (sx, sy, w, h): (usize, usize, usize, usize),
    dst: &mut [u8],
    dst_w: usize,
    (dx, dy): (usize, usize),
) {
    for row in 0..h {
        let s = ((sy + row) * src_w + sx) * 3;
        let d = ((dy + row) * dst_w + dx) * 3;
        dst[d..d + w * 3].copy_from_slice(&src[s..s + w * 3]);
    }
}
