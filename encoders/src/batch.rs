//! The batching core shared by every image encoder: images in (8-bit, 16-bit or f32 samples,
//! grey, RGB or RGBA, any size), a normalised `(N, C, H, W)` tensor on the encoder's device and
//! dtype out, following the model's [`InputSpec`].
//!
//! On the host, each image's pixels are laid out as channel planes in their stored sample type
//! (padded and resized first where the spec says so), in parallel on rayon, into buffers reused
//! from batch to batch. The batch then travels to the device as stored samples: 8-bit as `u8`
//! (a quarter of f32's bytes), 16-bit as pairs of `u8` (low byte, high byte: candle 0.11 has no
//! u16 dtype, and its CUDA backend cannot cast i16 — "i16,i32 dtypes are not supported" — while
//! u8 → f32 works everywhere; the pair is recombined exactly in f32 as `low + 256 · high`), and
//! f32 as f32 (also what non-antialiased interpolation produces). Scaling, min–max, windowing
//! and mean/std run there as tensor ops, the same ops on CPU and CUDA.

use crate::error::{EncoderError, Result};
use crate::image::{ImageRef, Samples};
use crate::input::{InputSpec, Range, Resize};
use crate::resize::{antialiased, interpolate, Sample};
use candle_core::{DType, Device, Tensor};
use rayon::prelude::*;

/// How a batch travels to the device.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Transport {
    U8,
    U16Pairs,
    F32,
}

/// Host buffers, one per transport type, reused between batches.
#[derive(Debug, Default)]
struct HostBuffers {
    u8: Vec<u8>,
    u16_pairs: Vec<[u8; 2]>,
    f32: Vec<f32>,
}

/// Builds encoder input batches.
#[derive(Debug)]
pub struct Batcher {
    spec: InputSpec,
    device: Device,
    dtype: DType,
    max_batch: usize,
    /// `(1, C, 1, 1)` on the device, f32.
    mean: Tensor,
    std: Tensor,
    host: HostBuffers,
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
        if !matches!(spec.channels, 1 | 3) || spec.height == 0 || spec.width == 0 {
            return Err(EncoderError::Config(format!(
                "input spec {}x{}x{}: a model takes 1 or 3 channels and a non-empty size",
                spec.height, spec.width, spec.channels
            )));
        }
        if spec.mean.len() != spec.channels || spec.std.len() != spec.channels || spec.std.contains(&0.0) {
            return Err(EncoderError::Config(format!(
                "input spec needs {} means and {} non-zero stds, got {:?} and {:?}",
                spec.channels, spec.channels, spec.mean, spec.std
            )));
        }
        match spec.range {
            Range::Divide(d) if !(d.is_finite() && d != 0.0) => return Err(EncoderError::Config(format!("range divisor {d}: expected a non-zero number"))),
            Range::Window { width, center } if !(width > 0.0 && center.is_finite()) => {
                return Err(EncoderError::Config(format!("window width {width}: expected a positive width")))
            }
            _ => {}
        }
        if let Some(pct) = spec.center_crop {
            if !(pct > 0.0 && pct <= 1.0) || spec.height != spec.width {
                return Err(EncoderError::Config(format!(
                    "centre crop with crop_pct {pct} on {}x{}: needs 0 < crop_pct <= 1 and a square input",
                    spec.height, spec.width
                )));
            }
        }
        let per_channel = |v: &[f32]| Tensor::from_slice(v, (1, spec.channels, 1, 1), &device);
        Ok(Batcher { mean: per_channel(&spec.mean)?, std: per_channel(&spec.std)?, spec, device, dtype, max_batch, host: HostBuffers::default() })
    }

    /// Largest batch this batcher makes.
    pub fn max_batch(&self) -> usize {
        self.max_batch
    }

    /// The input spec.
    pub fn spec(&self) -> &InputSpec {
        &self.spec
    }

    /// Packs 1..=max_batch images into one `(N, C, H, W)` tensor on the device, normalised.
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
        for (index, img) in images.iter().enumerate() {
            self.validate(index, img)?;
        }
        if self.spec.eight_bit && images.iter().any(|i| !matches!(i.samples, Samples::U8(_))) {
            let reduced: Vec<(usize, usize, usize, Vec<u8>)> = images.iter().map(to_eight_bit).collect();
            let refs: Vec<ImageRef<'_>> = reduced.iter().map(|(w, h, c, d)| ImageRef::u8(*w, *h, *c, d)).collect();
            let raw = self.lay_out(&refs)?;
            return self.normalise(raw, &refs);
        }
        let raw = self.lay_out(images)?;
        self.normalise(raw, images)
    }

    fn transport(&self, images: &[ImageRef<'_>]) -> Transport {
        let interpolates = matches!(self.spec.resize, Resize::Interpolate { .. });
        images
            .iter()
            .map(|img| match img.samples {
                Samples::F32(_) => Transport::F32,
                _ if interpolates && self.spec.needs_geometry(img.width, img.height) => Transport::F32,
                Samples::U16 { .. } => Transport::U16Pairs,
                Samples::U8(_) => Transport::U8,
            })
            .max()
            .unwrap_or(Transport::U8)
    }

    /// Channel planes of every image in the transport type, as a CPU tensor `(N, C, H, W)`.
    fn lay_out(&mut self, images: &[ImageRef<'_>]) -> Result<Tensor> {
        let (c, h, w) = (self.spec.channels, self.spec.height, self.spec.width);
        let per_image = c * h * w;
        let n = images.len();
        let shape = (n, c, h, w);
        let spec = &self.spec;
        macro_rules! fill {
            ($buf:expr, $t:ty, $conv:expr) => {{
                let buf: &mut Vec<$t> = $buf;
                buf.resize(self.max_batch * per_image, Default::default());
                buf[..n * per_image].par_chunks_mut(per_image).zip(images.par_iter()).try_for_each(|(out, img)| prepare(spec, img, out, $conv))?;
                &buf[..n * per_image]
            }};
        }
        Ok(match self.transport(images) {
            Transport::U8 => Tensor::from_slice(fill!(&mut self.host.u8, u8, Conv::<u8> { u8: |v| v, u16: |_| 0, f32: |_| 0 }), shape, &Device::Cpu)?,
            Transport::U16Pairs => {
                let pairs = fill!(&mut self.host.u16_pairs, [u8; 2], Conv::<[u8; 2]> { u8: |v| [v, 0], u16: u16::to_le_bytes, f32: |_| [0; 2] });
                Tensor::from_slice(pairs.as_flattened(), (n, c, h, w, 2), &Device::Cpu)?
            }
            Transport::F32 => {
                Tensor::from_slice(fill!(&mut self.host.f32, f32, Conv::<f32> { u8: f32::from, u16: f32::from, f32: |v| v }), shape, &Device::Cpu)?
            }
        })
    }

    /// On the device: recombine 16-bit byte pairs, scale the range, subtract mean, divide by std,
    /// cast to the model's dtype.
    fn normalise(&self, raw: Tensor, images: &[ImageRef<'_>]) -> Result<Tensor> {
        let n = images.len();
        let mut x = raw.to_device(&self.device)?.to_dtype(DType::F32)?;
        if x.rank() == 5 {
            // 16-bit samples as (low, high) byte pairs.
            x = (x.narrow(4, 0, 1)? + (x.narrow(4, 1, 1)? * 256.0)?)?.squeeze(4)?;
        }
        let per_image = |v: Vec<f32>| Tensor::from_vec(v, (n, 1, 1, 1), &self.device);
        x = match self.spec.range {
            Range::Full => x.broadcast_div(&per_image(images.iter().map(|i| i.samples.full_scale()).collect())?)?,
            Range::Divide(d) => x.broadcast_div(&per_image(vec![d; n])?)?,
            Range::MinMax => {
                let flat = x.flatten_from(1)?;
                let lo = flat.min_keepdim(1)?.reshape((n, 1, 1, 1))?;
                let hi = flat.max_keepdim(1)?.reshape((n, 1, 1, 1))?;
                // A flat image has x − lo = 0 everywhere: any positive divisor gives 0.
                let span = (hi - &lo)?.maximum(f32::MIN_POSITIVE)?;
                x.broadcast_sub(&lo)?.broadcast_div(&span)?
            }
            Range::Window { center, width } => {
                let lo = f64::from(center) - f64::from(width) / 2.0;
                x.broadcast_sub(&per_image(vec![lo as f32; n])?)?.broadcast_div(&per_image(vec![width; n])?)?.clamp(0f32, 1f32)?
            }
        };
        let x = x.broadcast_sub(&self.mean)?.broadcast_div(&self.std)?;
        Ok(x.to_dtype(self.dtype)?)
    }

    /// Checks that `img` can be packed ([`InputSpec::check`]); the error names it as input
    /// `index`.
    pub fn validate(&self, index: usize, img: &ImageRef<'_>) -> Result<()> {
        self.spec.check(img).map_err(|problem| EncoderError::BadInput { index, problem })
    }
}

/// An image's samples as 8-bit ones: `trunc(v · 255 / max)` ([`InputSpec::eight_bit`]).
fn to_eight_bit(img: &ImageRef<'_>) -> (usize, usize, usize, Vec<u8>) {
    let data = match img.samples {
        Samples::U8(d) => d.to_vec(),
        Samples::U16 { data, bits_stored } => {
            let max = (1u32 << bits_stored) - 1;
            data.iter().map(|v| (u32::from(*v).min(max) * 255 / max) as u8).collect()
        }
        Samples::F32(d) => d.iter().map(|v| (v.clamp(0.0, 1.0) * 255.0) as u8).collect(),
    };
    (img.width, img.height, img.channels, data)
}

/// How each stored sample type becomes the transport type `T` (only the conversions a
/// transport is chosen for are ever called).
struct Conv<T> {
    u8: fn(u8) -> T,
    u16: fn(u16) -> T,
    f32: fn(f32) -> T,
}

/// Lays one image out as channel planes `out` (C, H, W): channels mapped, padded and resized
/// as the spec says.
fn prepare<T: Copy + Send + Default>(spec: &InputSpec, img: &ImageRef<'_>, out: &mut [T], conv: Conv<T>) -> Result<()> {
    match img.samples {
        Samples::U8(d) => prepare_typed(spec, img, d, out, conv.u8, conv.f32),
        Samples::U16 { data, .. } => prepare_typed(spec, img, data, out, conv.u16, conv.f32),
        Samples::F32(d) => prepare_typed(spec, img, d, out, conv.f32, conv.f32),
    }
}

fn prepare_typed<S: Sample, T: Copy>(spec: &InputSpec, img: &ImageRef<'_>, data: &[S], out: &mut [T], conv: fn(S) -> T, from_f32: fn(f32) -> T) -> Result<()> {
    let (c, h, w) = (spec.channels, spec.height, spec.width);
    if (img.width, img.height) == (w, h) && !(spec.pad_to_square && w != h) {
        planes(data, img.width, img.height, img.channels, c, out, conv);
        return Ok(());
    }
    // Geometry: first an interleaved image with the model's channels, padded if asked.
    let side = img.width.max(img.height);
    let (pw, ph) = if spec.pad_to_square { (side, side) } else { (img.width, img.height) };
    let pad = S::from_pad(spec.pad_value);
    let (x0, y0) = if spec.pad_centered { ((pw - img.width) / 2, (ph - img.height) / 2) } else { (0, 0) };
    let mut inter = vec![pad; pw * ph * c];
    for y in 0..img.height {
        for x in 0..img.width {
            let src = (y * img.width + x) * img.channels;
            let dst = ((y + y0) * pw + x + x0) * c;
            for ch in 0..c {
                inter[dst + ch] = data[src + if img.channels == 1 { 0 } else { ch }];
            }
        }
    }
    // The resize target: the model's size, or timm's shorter side before a centre crop.
    let (rw, rh) = match spec.center_crop {
        Some(pct) => {
            let short = (w.min(h) as f32 / pct).floor() as usize;
            let scaled = |long: usize, shortest: usize| (short as f64 * long as f64 / shortest as f64) as usize;
            if pw <= ph {
                (short, scaled(ph, pw))
            } else {
                (scaled(pw, ph), short)
            }
        }
        None => (w, h),
    };
    let (left, top) = ((rw - w) as f64 / 2.0, (rh - h) as f64 / 2.0);
    let origin = (left.round_ties_even() as usize, top.round_ties_even() as usize);
    match spec.resize {
        Resize::Antialiased(filter) => {
            let resized = antialiased(&inter, (pw, ph), c, (rw, rh), filter);
            let mut full = vec![S::default(); rw * rh * c];
            planes(&resized, rw, rh, c, c, &mut full, |v| v);
            crop_planes(&full, (rw, rh), (w, h), origin, out, conv);
        }
        Resize::Interpolate { kernel, coordinates } => {
            let mut f = vec![0f32; pw * ph * c];
            planes(&inter, pw, ph, c, c, &mut f, S::to_f32);
            let resized = interpolate(&f, (pw, ph), c, (rw, rh), kernel, coordinates);
            crop_planes(&resized, (rw, rh), (w, h), origin, out, from_f32);
        }
        Resize::None => unreachable!("checked: no geometry without a resize method"),
    }
    Ok(())
}

/// Planes `(c, rh, rw)` → their `(c, h, w)` window from `(left, top)` (Python's `round` of
/// the centring offset, ties to even, as torchvision's `CenterCrop`).
fn crop_planes<S: Copy, T>(full: &[S], (rw, rh): (usize, usize), (w, h): (usize, usize), (left, top): (usize, usize), out: &mut [T], conv: fn(S) -> T) {
    for (r, dst) in out.chunks_exact_mut(w).enumerate() {
        let (ch, y) = (r / h, r % h);
        let at = (ch * rh + y + top) * rw + left;
        dst.iter_mut().zip(&full[at..at + w]).for_each(|(o, v)| *o = conv(*v));
    }
}

/// Interleaved `(h, w, from)` → planes `(to, h, w)`: grey feeds every plane, RGB(A) channel k
/// feeds plane k, alpha is dropped.
fn planes<S: Copy, T>(data: &[S], w: usize, h: usize, from: usize, to: usize, out: &mut [T], conv: fn(S) -> T) {
    for (ch, plane) in out.chunks_exact_mut(w * h).enumerate().take(to) {
        let k = if from == 1 { 0 } else { ch };
        for (o, px) in plane.iter_mut().zip(data.chunks_exact(from)) {
            *o = conv(px[k]);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::input::{Coordinates, Kernel};

    fn spec(h: usize, w: usize) -> InputSpec {
        InputSpec { height: h, width: w, ..InputSpec::rgb_unit(1) }
    }

    fn values(t: &Tensor) -> Vec<f32> {
        t.to_dtype(DType::F32).unwrap().flatten_all().unwrap().to_vec1::<f32>().unwrap()
    }

    #[test]
    fn packs_nchw_with_normalisation() {
        let spec = InputSpec { mean: vec![0.5, 0.0, 0.0], std: vec![0.5, 1.0, 2.0], ..spec(2, 2) };
        let mut b = Batcher::new(spec, 4, Device::Cpu, DType::F32).unwrap();
        // Pixel (x, y) = [10x+y, 100, 255].
        let img: Vec<u8> = (0..4).flat_map(|i| [(10 * (i % 2) + i / 2) as u8, 100, 255]).collect();
        let t = b.pack(&[ImageRef::rgb(2, 2, &img), ImageRef::rgb(2, 2, &img)]).unwrap();
        assert_eq!(t.dims(), &[2, 3, 2, 2]);
        let v = values(&t);
        let r = |p: u8| (p as f32 / 255.0 - 0.5) / 0.5;
        assert_eq!(&v[0..4], &[r(0), r(10), r(1), r(11)]);
        assert_eq!(v[4], 100.0 / 255.0);
        assert_eq!(v[8], 255.0 / 255.0 / 2.0);
        assert_eq!(&v[12..24], &v[0..12]);
    }

    #[test]
    fn non_square_inputs_keep_rows_and_columns() {
        let mut b = Batcher::new(spec(2, 3), 1, Device::Cpu, DType::F32).unwrap();
        let img: Vec<u8> = (0..6u8).flat_map(|i| [i, 0, 0]).collect();
        let v = values(&b.pack(&[ImageRef::rgb(3, 2, &img)]).unwrap());
        assert_eq!(&v[..6], &[0.0, 1.0, 2.0, 3.0, 4.0, 5.0].map(|x: f32| x / 255.0));
    }

    #[test]
    fn grey_feeds_all_channels_and_dtypes_convert() {
        let mut b = Batcher::new(InputSpec::rgb_unit(2), 1, Device::Cpu, DType::BF16).unwrap();
        let t = b.pack(&[ImageRef::u8(2, 2, 1, &[0, 51, 102, 255])]).unwrap();
        assert_eq!(t.dtype(), DType::BF16);
        let v = values(&t);
        assert_eq!(&v[0..4], &v[4..8]);
        assert!((v[1] - 0.2).abs() < 1e-2 && v[3] == 1.0);
    }

    #[test]
    fn sixteen_bit_samples_travel_as_byte_pairs_and_scale_by_bits_stored() {
        let mut b = Batcher::new(InputSpec { channels: 1, mean: vec![0.0], std: vec![1.0], ..spec(1, 2) }, 2, Device::Cpu, DType::F32).unwrap();
        let a = [0u16, 4095];
        let c = [65535u16, 32768];
        let raw = b.lay_out(&[ImageRef::u16(2, 1, 1, &a, 12), ImageRef::u16(2, 1, 1, &c, 16)]).unwrap();
        assert_eq!((raw.dtype(), raw.dims()), (DType::U8, &[2, 1, 1, 2, 2][..]));
        let v = values(&b.pack(&[ImageRef::u16(2, 1, 1, &a, 12), ImageRef::u16(2, 1, 1, &c, 16)]).unwrap());
        assert_eq!(v, vec![0.0, 1.0, 1.0, 32768.0 / 65535.0]);
        // A u8 image in the same batch rides along as byte pairs and still divides by 255.
        let v = values(&b.pack(&[ImageRef::u16(2, 1, 1, &a, 12), ImageRef::u8(2, 1, 1, &[255, 0])]).unwrap());
        assert_eq!(v, vec![0.0, 1.0, 1.0, 0.0]);
        let err = b.pack(&[ImageRef::u16(2, 1, 1, &[4096, 0], 12)]).unwrap_err().to_string();
        assert!(err.contains("4096") && err.contains("12-bit"), "{err}");
    }

    #[test]
    fn min_max_and_window() {
        let grey = |range| InputSpec { channels: 1, mean: vec![0.0], std: vec![1.0], range, ..spec(1, 4) };
        let mut b = Batcher::new(grey(Range::MinMax), 2, Device::Cpu, DType::F32).unwrap();
        let v = values(&b.pack(&[ImageRef::u16(4, 1, 1, &[100, 200, 300, 500], 16), ImageRef::u8(4, 1, 1, &[7; 4])]).unwrap());
        assert_eq!(v, vec![0.0, 0.25, 0.5, 1.0, 0.0, 0.0, 0.0, 0.0]);
        let mut b = Batcher::new(grey(Range::Window { center: 40.0, width: 80.0 }), 1, Device::Cpu, DType::F32).unwrap();
        let v = values(&b.pack(&[ImageRef::f32(4, 1, 1, &[-10.0, 0.0, 60.0, 100.0])]).unwrap());
        assert_eq!(v, vec![0.0, 0.0, 0.75, 1.0]);
    }

    #[test]
    fn padding_and_interpolation_run_in_order() {
        // A 2x1 grey image padded to 2x2 with 0, then kept at 2x2: padding only.
        let s = InputSpec {
            channels: 1,
            mean: vec![0.0],
            std: vec![1.0],
            pad_to_square: true,
            resize: Resize::Interpolate { kernel: Kernel::Bilinear, coordinates: Coordinates::HalfPixel },
            range: Range::Divide(1.0),
            ..spec(2, 2)
        };
        let mut b = Batcher::new(s, 1, Device::Cpu, DType::F32).unwrap();
        let v = values(&b.pack(&[ImageRef::u8(2, 1, 1, &[10, 20])]).unwrap());
        assert_eq!(v, vec![10.0, 20.0, 0.0, 0.0]);
    }

    #[test]
    fn bad_inputs_are_named() {
        let mut b = Batcher::new(InputSpec::rgb_unit(4), 2, Device::Cpu, DType::F32).unwrap();
        let ok = vec![0u8; 4 * 4 * 3];
        assert!(matches!(b.pack(&[]), Err(EncoderError::EmptyBatch)));
        let err = b.pack(&[ImageRef::rgb(4, 4, &ok), ImageRef::rgb(3, 4, &ok[..36])]).unwrap_err().to_string();
        assert!(err.starts_with("input 1:") && err.contains("3x4") && err.contains("4x4"), "{err}");
        let err = b.pack(&[ImageRef::u8(4, 4, 2, &ok[..32])]).unwrap_err().to_string();
        assert!(err.contains("2 channels"), "{err}");
        let err = b.pack(&[ImageRef::rgb(4, 4, &ok[..10])]).unwrap_err().to_string();
        assert!(err.contains("10 samples"), "{err}");
        let three = [ImageRef::rgb(4, 4, &ok); 3];
        assert!(b.pack(&three).unwrap_err().to_string().contains("batch size is 2"));
        let nan = vec![f32::NAN; 48];
        assert!(b.pack(&[ImageRef::f32(4, 4, 3, &nan)]).unwrap_err().to_string().contains("48 samples are NaN"));
        assert!(Batcher::new(InputSpec::rgb_unit(4), 0, Device::Cpu, DType::F32).is_err());
        assert!(Batcher::new(InputSpec::rgb_unit(4), 1, Device::Cpu, DType::U8).is_err());
        let four = InputSpec { channels: 4, mean: vec![0.0; 4], std: vec![1.0; 4], ..InputSpec::rgb_unit(4) };
        assert!(Batcher::new(four, 1, Device::Cpu, DType::F32).unwrap_err().to_string().contains("1 or 3 channels"));
    }
}
