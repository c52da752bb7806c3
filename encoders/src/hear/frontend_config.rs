//! The constants of HeAR's front end ([`super::frontend::FrontEnd`] and its CPU path): sample
//! rate, clip length, STFT, mel bands, PCEN and output size.

use crate::error::{EncoderError, Result};

/// The front end's constants.
#[derive(Debug, Clone, PartialEq)]
pub struct FrontEndConfig {
    /// Samples per second of the clips.
    pub sample_rate: u32,
    /// Samples per clip.
    pub clip_samples: usize,
    /// STFT window length in samples.
    pub frame_length: usize,
    /// STFT hop in samples.
    pub frame_step: usize,
    /// DFT length (≥ `frame_length`; the frame is zero-padded).
    pub fft_length: usize,
    /// Mel bands.
    pub mel_bins: usize,
    /// Lower edge of the lowest mel band, in Hz.
    pub lower_hz: f64,
    /// Upper edge of the highest mel band, in Hz.
    pub upper_hz: f64,
    /// PCEN gain exponent α.
    pub pcen_alpha: f64,
    /// PCEN moving-average coefficient s.
    pub pcen_smooth: f64,
    /// PCEN bias δ.
    pub pcen_delta: f64,
    /// PCEN root r.
    pub pcen_root: f64,
    /// PCEN floor ε added to the moving average.
    pub pcen_floor: f64,
    /// Rows (time) of the output image.
    pub out_height: usize,
    /// Columns (mel) of the output image; must equal `mel_bins` (no resize across bands).
    pub out_width: usize,
}

impl FrontEndConfig {
    /// HeAR's: 2 s at 16 kHz, 400/160/400 STFT, 128 mel bands 0–8 kHz, PCEN 0.8/0.04/2/2/1e-8,
    /// 192 × 128 output.
    pub fn hear() -> Self {
        FrontEndConfig {
            sample_rate: 16_000,
            clip_samples: 32_000,
            frame_length: 400,
            frame_step: 160,
            fft_length: 400,
            mel_bins: 128,
            lower_hz: 0.0,
            upper_hz: 8_000.0,
            pcen_alpha: 0.8,
            pcen_smooth: 0.04,
            pcen_delta: 2.0,
            pcen_root: 2.0,
            pcen_floor: 1e-8,
            out_height: 192,
            out_width: 128,
        }
    }

    /// STFT frames per clip (TensorFlow `pad_end`: `ceil(samples / step)`).
    pub fn frames(&self) -> usize {
        self.clip_samples.div_ceil(self.frame_step)
    }

    /// DFT bins kept (`fft_length / 2 + 1`).
    pub fn bins(&self) -> usize {
        self.fft_length / 2 + 1
    }

    pub(super) fn validate(&self) -> Result<()> {
        let fail = |m: String| Err(EncoderError::Config(m));
        if [self.clip_samples, self.frame_length, self.frame_step, self.mel_bins, self.out_height].contains(&0) || self.sample_rate == 0 {
            return fail(format!("every front-end size must be positive: {self:?}"));
        }
        if self.fft_length < self.frame_length {
            return fail(format!("FFT length {} is shorter than the frame {}", self.fft_length, self.frame_length));
        }
        if self.out_width != self.mel_bins {
            return fail(format!("output width {} must equal the {} mel bands", self.out_width, self.mel_bins));
        }
        let nyquist = f64::from(self.sample_rate) / 2.0;
        if !(0.0 <= self.lower_hz && self.lower_hz < self.upper_hz && self.upper_hz <= nyquist) {
            return fail(format!("mel edges {}..{} Hz must satisfy 0 <= lower < upper <= {nyquist}", self.lower_hz, self.upper_hz));
        }
        if !(self.pcen_smooth > 0.0 && self.pcen_smooth <= 1.0 && self.pcen_root >= 1.0 && self.pcen_alpha <= 1.0) {
            return fail(format!("PCEN needs 0 < smoothing <= 1, root >= 1, alpha <= 1: {self:?}"));
        }
        Ok(())
    }
}
