//! What a model takes, declared as data: [`InputSpec`] for images (size, channels, resizing,
//! padding, normalisation) and [`AudioSpec`] for sound. One preprocessing path
//! ([`crate::Batcher`]) executes any image declaration, so a new model declares its
//! input and writes no preprocessing code.
//!
//! The order is fixed: channels (grey tiled to RGB where the model takes 3, alpha dropped) →
//! pad to square → resize (optionally the shorter side, then a centre crop) → value range →
//! per-channel mean/std. An image already at the model's height × width is used as it is.

use crate::image::{ImageRef, Samples};

/// How an image of another size is brought to the model's height × width.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Resize {
    /// No resizing: an image of another size is an error that says so (Path Foundation: its
    /// serving embeds 224×224 patches cut from the image, never a resized image).
    None,
    /// Antialiased resampling exactly as Pillow's `Image.resize` does it (the filter's support
    /// widened by the scale when downscaling; horizontal pass, then vertical; 8-bit samples in
    /// Pillow's 22-bit fixed point, rounded per pass). 16-bit samples are rounded per pass, f32
    /// stays f32. timm's and transformers' PIL-based image processors resize this way.
    Antialiased(Filter),
    /// Exact non-antialiased interpolation on float samples, the kind `torch.nn.functional.
    /// interpolate` and TensorFlow's resize ops do: each output pixel reads only its nearest
    /// 2 (bilinear) or 4 (bicubic) source pixels per axis, whatever the scale.
    Interpolate {
        /// Bilinear or bicubic.
        kernel: Kernel,
        /// Where output pixel centres fall on the source grid.
        coordinates: Coordinates,
    },
}

/// Filters of antialiased resizing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Filter {
    /// Triangle filter (Pillow `BILINEAR`).
    Bilinear,
    /// Keys cubic with a = −0.5 (Pillow `BICUBIC`, Catmull–Rom).
    Bicubic,
    /// Lanczos, 3 lobes (Pillow `LANCZOS`).
    Lanczos3,
}

/// Kernels of non-antialiased interpolation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Kernel {
    /// Linear in each axis.
    Bilinear,
    /// Keys cubic with a = −0.75, as PyTorch's `bicubic` (TensorFlow's uses −0.5).
    Bicubic,
}

/// How output coordinates map to source coordinates in non-antialiased interpolation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Coordinates {
    /// `src = (dst + 0.5) · scale − 0.5`: PyTorch `align_corners=False`, TensorFlow 2
    /// `tf.image.resize`, TF1 with `half_pixel_centers=True`.
    HalfPixel,
    /// `src = dst · scale`: TensorFlow 1 `resize_bilinear` / `resize_bicubic` with their defaults
    /// (`align_corners=False, half_pixel_centers=False`).
    Asymmetric,
}

/// How samples become values in a known range before mean/std.
#[derive(Debug, Clone, Copy, PartialEq)]
#[non_exhaustive]
pub enum Range {
    /// Divide by the largest value the samples can hold: 255 for 8-bit, 2^bits_stored − 1 for
    /// 16-bit; f32 samples are taken as they are. (torchvision `ToTensor` for 8-bit.)
    Full,
    /// Divide by this number (e.g. 255 for 8-bit samples, 32768 for 16-bit PCM).
    Divide(f32),
    /// Per image: `(x − min) / (max − min)` over all its channels; an image with one value
    /// everywhere becomes 0.
    MinMax,
    /// A display window in sample units: `clamp((x − (center − width/2)) / width, 0, 1)`.
    Window {
        /// Centre of the window.
        center: f32,
        /// Width of the window (positive).
        width: f32,
    },
}

/// The largest square (in pixels) an image is padded to before resizing: 16,384², 805 MB of
/// RGB8. A 50,000 × 10 strip would otherwise become 7.5 GB before being shrunk to 448².
pub const MAX_PADDED_PIXELS: usize = 16_384 * 16_384;

/// A model's image input: height × width × channels and the preprocessing that produces it.
#[derive(Debug, Clone, PartialEq)]
pub struct InputSpec {
    /// Input height in pixels.
    pub height: usize,
    /// Input width in pixels.
    pub width: usize,
    /// Channels the model takes: 3 (RGB; grey images are tiled to 3) or 1 (greyscale).
    pub channels: usize,
    /// How images of another size are resized.
    pub resize: Resize,
    /// Pad to a square (bottom and right, with [`InputSpec::pad_value`]) before resizing, as a
    /// model's serving code does for non-square images.
    pub pad_to_square: bool,
    /// Sample value the padding takes (in the image's own units, before [`Range`]).
    pub pad_value: f32,
    /// Pad evenly: half the difference (rounded down) before (top or left), the rest after,
    /// as MedSigLIP's serving does. `false`: all of it after (bottom and right).
    pub pad_centered: bool,
    /// Reduce 16-bit and float images to 8 bits before anything else, as
    /// `trunc(v · 255 / max)` (16-bit: `v / 257` rounded down; float: `trunc(clamp(v, 0, 1) · 255)`),
    /// as MedSigLIP's serving does before resizing; they then scale as 8-bit images.
    pub eight_bit: bool,
    /// timm's eval transform: resize the shorter side to `floor(size / crop_pct)` (the longer in
    /// proportion), then cut the centre `height × width`. `None`: resize straight to
    /// `height × width`.
    pub center_crop: Option<f32>,
    /// How samples are scaled before mean/std.
    pub range: Range,
    /// Per-channel mean subtracted after scaling.
    pub mean: Vec<f32>,
    /// Per-channel standard deviation divided by after subtracting the mean.
    pub std: Vec<f32>,
}

impl InputSpec {
    /// `size × size` RGB scaled to [0, 1], no mean/std, no resizing: what Google's Path
    /// Foundation serving feeds its model.
    pub fn rgb_unit(size: usize) -> Self {
        InputSpec {
            height: size,
            width: size,
            channels: 3,
            resize: Resize::None,
            pad_to_square: false,
            pad_value: 0.0,
            pad_centered: false,
            eight_bit: false,
            center_crop: None,
            range: Range::Full,
            mean: vec![0.0; 3],
            std: vec![1.0; 3],
        }
    }

    /// The same declaration with other per-channel mean and std.
    pub fn with_mean_std(mut self, mean: [f32; 3], std: [f32; 3]) -> Self {
        self.mean = mean[..self.channels].to_vec();
        self.std = std[..self.channels].to_vec();
        self
    }

    /// The same declaration with timm's shorter-side resize and centre crop (`crop_pct`).
    pub fn with_center_crop(mut self, crop_pct: f32) -> Self {
        self.center_crop = Some(crop_pct);
        self
    }

    /// The same declaration with another resize method.
    pub fn with_resize(mut self, resize: Resize) -> Self {
        self.resize = resize;
        self
    }

    /// Whether an image of `width × height` needs padding or resizing to fit.
    pub fn needs_geometry(&self, width: usize, height: usize) -> bool {
        (self.pad_to_square && width != height) || (width, height) != (self.width, self.height)
    }

    /// Checks that `img` fits this input (channels, sample count and values, size or a resize
    /// method); the error says what is wrong and what was expected.
    pub fn check(&self, img: &ImageRef<'_>) -> Result<(), String> {
        if !matches!(img.channels, 1 | 3 | 4) {
            return Err(format!("{} channels per pixel; expected 1 (grey), 3 (RGB) or 4 (RGBA)", img.channels));
        }
        if self.channels == 1 && img.channels != 1 {
            return Err(format!("{} channels given; this encoder takes greyscale images", img.channels));
        }
        let expected = img.width * img.height * img.channels;
        if img.samples.len() != expected {
            return Err(format!("{} samples for a {}x{}x{} image (expected {expected})", img.samples.len(), img.width, img.height, img.channels));
        }
        if img.width == 0 || img.height == 0 {
            return Err("empty image".into());
        }
        if self.pad_to_square {
            let side = img.width.max(img.height);
            if side.saturating_mul(side) > MAX_PADDED_PIXELS {
                return Err(format!(
                    "a {}x{} image padded to a square would be {side}x{side} pixels (at most {MAX_PADDED_PIXELS} are allowed); crop or shrink it first",
                    img.width, img.height
                ));
            }
        }
        match img.samples {
            Samples::U16 { data, bits_stored } => {
                if !(8..=16).contains(&bits_stored) {
                    return Err(format!("{bits_stored} bits stored; expected 8 to 16"));
                }
                let max = ((1u32 << bits_stored) - 1) as u16;
                if let Some(v) = data.iter().find(|v| **v > max) {
                    return Err(format!("sample value {v} exceeds {max}, the largest {bits_stored}-bit value"));
                }
            }
            Samples::F32(data) => {
                let count = data.iter().filter(|v| !v.is_finite()).count();
                if count > 0 {
                    return Err(format!("{count} samples are NaN or infinite"));
                }
            }
            Samples::U8(_) => {}
        }
        if self.needs_geometry(img.width, img.height) && self.resize == Resize::None {
            return Err(format!(
                "image is {}x{}, the encoder takes {}x{} and resizes nothing; cut patches of that size or choose a resize method",
                img.width, img.height, self.width, self.height
            ));
        }
        Ok(())
    }

    /// One line for metadata, e.g. `224x224x3, resize none, range full (x/255 for 8-bit),
    /// mean [0.0, 0.0, 0.0], std [1.0, 1.0, 1.0]`.
    pub fn describe(&self) -> String {
        let range = match self.range {
            Range::Full => "full (x/255 for 8-bit, x/(2^bits-1) for 16-bit)".to_string(),
            Range::Divide(d) => format!("x/{d}"),
            Range::MinMax => "per-image min-max".to_string(),
            Range::Window { center, width } => format!("window center {center} width {width}"),
        };
        let resize = match self.resize {
            Resize::None => "none".to_string(),
            Resize::Antialiased(f) => format!("antialiased {f:?}"),
            Resize::Interpolate { kernel, coordinates } => format!("{kernel:?} {coordinates:?} (no antialias)"),
        };
        format!(
            "{}x{}x{}, {}resize {resize}{}{}, range {range}, mean {:?}, std {:?}",
            self.height,
            self.width,
            self.channels,
            if self.eight_bit { "reduced to 8 bits, " } else { "" },
            match (self.pad_to_square, self.pad_centered) {
                (false, _) => "",
                (true, false) => ", padded to square",
                (true, true) => ", padded to a centred square",
            },
            self.center_crop.map(|p| format!(", shorter side then centre crop (crop_pct {p})")).unwrap_or_default(),
            self.mean,
            self.std
        )
    }
}

/// A model's audio input: mono clips of a fixed length at a fixed rate.
#[derive(Debug, Clone, Copy, PartialEq)]
#[non_exhaustive]
pub struct AudioSpec {
    /// Samples per second.
    pub sample_rate: u32,
    /// Samples per clip.
    pub clip_samples: usize,
}
