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
