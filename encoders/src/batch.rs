//! The batching core shared by every encoder: 8-bit images in, a normalised `(N, C, H, W)`
//! tensor on the encoder's device and dtype out. Packing runs in parallel on rayon into a host
//! buffer that is reused from batch to batch.

use crate::error::{EncoderError, Result};
use crate::spec::InputSpec;
use candle_core::{DType, Device, Tensor};
use rayon::prelude::*;

/// An 8-bit image, row-major, interleaved channels (1 grey, 3 RGB or 4 RGBA).
#[derive(Debug, Clone, Copy)]
pub struct ImageRef<'a> {
    /// Width in pixels.
    pub width: usize,
    /// Height in pixels.
    pub height: usize,
    /// Interleaved channels per pixel.
    pub channels: usize,
    /// `width * height * channels` bytes.
    pub data: &'a [u8],
}

impl<'a> ImageRef<'a> {
    /// An RGB8 image.
    pub fn rgb(width: usize, height: usize, data: &'a [u8]) -> Self {
        ImageRef { width, height, channels: 3, data }
    }
}

/// Builds encoder input batches.
#[derive(Debug)]
pub struct Batcher {
    spec: InputSpec,
    device: Device,
    dtype: DType,
    max_batch: usize,
    resize: bool,
    /// Per channel: the normalised value of each 8-bit level.
    lut: Vec<[f32; 256]>,
    host: Vec<f32>,
}

impl Batcher {
    /// A batcher for `spec`, making batches of up to `max_batch` images on `device` in `dtype`
    /// (f32, f16 or bf16).
    pub fn new(spec: InputSpec, max_batch: usize, device: Device, dtype: DType) -> Result<Self> {
        if max_batch == 0 {
            return Err(EncoderError::Config("batch size must be at least 1".into()));
        }
        if !matches!(dtype, DType::F32 | DType::F16 | DType::BF16) {
            return Err(EncoderError::Config(format!("dtype {dtype:?}: expected f32, f16 or bf16")));
        }
        if spec.mean.len() != spec.channels
            || spec.std.len() != spec.channels
            || spec.std.contains(&0.0)
            || spec.divisor == 0.0
        {
            return Err(EncoderError::Config(format!(
                "input spec needs {} means and {} non-zero stds, got {:?} and {:?}",
                spec.channels, spec.channels, spec.mean, spec.std
            )));
        }
        let lut = (0..spec.channels)
            .map(|c| std::array::from_fn(|v| (v as f32 / spec.divisor - spec.mean[c]) / spec.std[c]))
            .collect();
        Ok(Batcher { spec, device, dtype, max_batch, resize: false, lut, host: Vec::new() })
    }

    /// Allow inputs of another size, resized bilinearly to the spec (off by default: a patch of
    /// the wrong size is then an error).
    pub fn with_resize(mut self, resize: bool) -> Self {
        self.resize = resize;
        self
    }

    /// Largest batch this batcher makes.
    pub fn max_batch(&self) -> usize {
        self.max_batch
    }

    /// The input spec.
    pub fn spec(&self) -> &InputSpec {
        &self.spec
    }

    /// Packs 1..=max_batch images into one `(N, C, H, W)` tensor.
    pub fn pack(&mut self, images: &[ImageRef<'_>]) -> Result<Tensor> {
        if images.is_empty() {
            return Err(EncoderError::EmptyBatch);
        }
        if images.len() > self.max_batch {
            return Err(EncoderError::Config(format!(
                "{} images given, the batch size is {}; split them (e.g. with chunks({}))",
                images.len(),
                self.max_batch,
                self.max_batch
            )));
        }
        let (c, h, w) = (self.spec.channels, self.spec.height, self.spec.width);
        for (index, img) in images.iter().enumerate() {
            self.check(index, img)?;
        }
        let per_image = c * h * w;
        let n = images.len();
        self.host.resize(self.max_batch * per_image, 0.0);
        let (lut, resize) = (&self.lut, self.resize);
        self.host[..n * per_image].par_chunks_mut(per_image).zip(images.par_iter()).for_each(|(out, img)| {
            if img.width == w && img.height == h {
                pack_planes(img, out, lut, (c, h, w), |x, y| (x, y));
            } else {
                debug_assert!(resize);
                pack_resized(img, out, lut, (c, h, w));
            }
        });
        let cpu = Tensor::from_slice(&self.host[..n * per_image], (n, c, h, w), &Device::Cpu)?;
        // Convert where it is cheapest: on the GPU after the copy, on the CPU otherwise.
        let t = if self.device.is_cpu() { cpu.to_dtype(self.dtype)? } else { cpu.to_device(&self.device)?.to_dtype(self.dtype)? };
        Ok(t)
    }

    fn check(&self, index: usize, img: &ImageRef<'_>) -> Result<()> {
        let bad = |problem: String| EncoderError::BadInput { index, problem };
        if !matches!(img.channels, 1 | 3 | 4) {
            return Err(bad(format!("{} channels per pixel; expected 1 (grey), 3 (RGB) or 4 (RGBA)", img.channels)));
        }
        if self.spec.channels == 1 && img.channels != 1 {
            return Err(bad(format!("{} channels given; this encoder takes greyscale images", img.channels)));
        }
        if img.data.len() != img.width * img.height * img.channels {
            return Err(bad(format!(
                "{} bytes for a {}x{}x{} image (expected {})",
                img.data.len(),
                img.width,
                img.height,
                img.channels,
                img.width * img.height * img.channels
            )));
        }
        if img.width == 0 || img.height == 0 {
            return Err(bad("empty image".into()));
        }
        if (img.width, img.height) != (self.spec.width, self.spec.height) && !self.resize {
            return Err(bad(format!(
                "image is {}x{}, the encoder takes {}x{}; pass patches of that size or enable resizing (Batcher::with_resize)",
                img.width, img.height, self.spec.width, self.spec.height
            )));
        }
        Ok(())
    }
}

/// Writes channel planes of `out` from `img`, `src(x, y)` mapping output to input pixels.
fn pack_planes(img: &ImageRef<'_>, out: &mut [f32], lut: &[[f32; 256]], (c, h, w): (usize, usize, usize), src: impl Fn(usize, usize) -> (usize, usize)) {
    for (ch, plane) in out.chunks_exact_mut(h * w).enumerate().take(c) {
        // Grey input feeds every channel; RGB(A) input feeds channel ch.
        let from = if img.channels == 1 { 0 } else { ch };
        let table = &lut[ch];
        for y in 0..h {
            let row = &mut plane[y * w..(y + 1) * w];
            for (x, v) in row.iter_mut().enumerate() {
                let (sx, sy) = src(x, y);
                *v = table[img.data[(sy * img.width + sx) * img.channels + from] as usize];
            }
        }
    }
}

/// Bilinear resize (pixel centres aligned, no antialiasing) then normalisation.
fn pack_resized(img: &ImageRef<'_>, out: &mut [f32], lut: &[[f32; 256]], (c, h, w): (usize, usize, usize)) {
    let sx = img.width as f32 / w as f32;
    let sy = img.height as f32 / h as f32;
    for (ch, plane) in out.chunks_exact_mut(h * w).enumerate().take(c) {
        let from = if img.channels == 1 { 0 } else { ch };
        let table = &lut[ch];
        let at = |x: usize, y: usize| f32::from(img.data[(y * img.width + x) * img.channels + from]);
        for y in 0..h {
            let fy = ((y as f32 + 0.5) * sy - 0.5).clamp(0.0, (img.height - 1) as f32);
            let (y0, ty) = (fy.floor() as usize, fy - fy.floor());
            let y1 = (y0 + 1).min(img.height - 1);
            for x in 0..w {
                let fx = ((x as f32 + 0.5) * sx - 0.5).clamp(0.0, (img.width - 1) as f32);
                let (x0, tx) = (fx.floor() as usize, fx - fx.floor());
                let x1 = (x0 + 1).min(img.width - 1);
                let top = at(x0, y0) * (1.0 - tx) + at(x1, y0) * tx;
                let bottom = at(x0, y1) * (1.0 - tx) + at(x1, y1) * tx;
                let v = top * (1.0 - ty) + bottom * ty;
                // Interpolated values fall between LUT entries: apply the affine map directly.
                plane[y * w + x] = table[0] + (table[1] - table[0]) * v;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn packs_nchw_with_normalisation() {
        let spec = InputSpec { height: 2, width: 2, channels: 3, divisor: 255.0, mean: vec![0.5, 0.0, 0.0], std: vec![0.5, 1.0, 2.0] };
        let mut b = Batcher::new(spec, 4, Device::Cpu, DType::F32).unwrap();
        // Pixel (x, y) = [10x+y, 100, 255].
        let img: Vec<u8> = (0..4).flat_map(|i| [(10 * (i % 2) + i / 2) as u8, 100, 255]).collect();
        let t = b.pack(&[ImageRef::rgb(2, 2, &img), ImageRef::rgb(2, 2, &img)]).unwrap();
        assert_eq!(t.dims(), &[2, 3, 2, 2]);
        let v = t.flatten_all().unwrap().to_vec1::<f32>().unwrap();
        let r = |p: u8| (p as f32 / 255.0 - 0.5) / 0.5;
        assert_eq!(&v[0..4], &[r(0), r(10), r(1), r(11)]);
        assert_eq!(v[4], 100.0 / 255.0);
        assert_eq!(v[8], 255.0 / 255.0 / 2.0);
        assert_eq!(&v[12..24], &v[0..12]);
    }

    #[test]
    fn grey_feeds_all_channels_and_dtypes_convert() {
        let mut b = Batcher::new(InputSpec::rgb_unit(2), 1, Device::Cpu, DType::BF16).unwrap();
        let t = b.pack(&[ImageRef { width: 2, height: 2, channels: 1, data: &[0, 51, 102, 255] }]).unwrap();
        assert_eq!(t.dtype(), DType::BF16);
        let v = t.to_dtype(DType::F32).unwrap().flatten_all().unwrap().to_vec1::<f32>().unwrap();
        assert_eq!(&v[0..4], &v[4..8]);
        assert!((v[1] - 0.2).abs() < 1e-2 && v[3] == 1.0);
    }

    #[test]
    fn bad_inputs_are_named() {
        let mut b = Batcher::new(InputSpec::rgb_unit(4), 2, Device::Cpu, DType::F32).unwrap();
        let ok = vec![0u8; 4 * 4 * 3];
        assert!(matches!(b.pack(&[]), Err(EncoderError::EmptyBatch)));
        let err = b.pack(&[ImageRef::rgb(4, 4, &ok), ImageRef::rgb(3, 4, &ok[..36])]).unwrap_err().to_string();
        assert!(err.starts_with("input 1:") && err.contains("3x4") && err.contains("4x4"), "{err}");
        let err = b.pack(&[ImageRef { width: 4, height: 4, channels: 2, data: &ok[..32] }]).unwrap_err().to_string();
        assert!(err.contains("2 channels"), "{err}");
        let err = b.pack(&[ImageRef::rgb(4, 4, &ok[..10])]).unwrap_err().to_string();
        assert!(err.contains("10 bytes"), "{err}");
        let three = [ImageRef::rgb(4, 4, &ok); 3];
        assert!(b.pack(&three).unwrap_err().to_string().contains("batch size is 2"));
        assert!(Batcher::new(InputSpec::rgb_unit(4), 0, Device::Cpu, DType::F32).is_err());
        assert!(Batcher::new(InputSpec::rgb_unit(4), 1, Device::Cpu, DType::U8).is_err());
    }

    #[test]
    fn resizes_only_when_asked() {
        let mut b = Batcher::new(InputSpec::rgb_unit(2), 1, Device::Cpu, DType::F32).unwrap().with_resize(true);
        // A flat 4x4 image stays flat after resizing.
        let img = vec![51u8; 4 * 4 * 3];
        let v = b.pack(&[ImageRef::rgb(4, 4, &img)]).unwrap().flatten_all().unwrap().to_vec1::<f32>().unwrap();
        assert!(v.iter().all(|x| (x - 0.2).abs() < 1e-6), "{v:?}");
    }
}
