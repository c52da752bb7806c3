//! Sample-rate conversion as `scipy.signal.resample` does it, which Google's HeAR serving
//! applies to every clip not at 16 kHz: the whole signal's real FFT, cut (or zero-extended) to
//! the new length's band, the unpaired bin at the band edge doubled when shrinking or halved
//! when growing, and the inverse FFT at the new length scaled by `new / old`. It assumes the
//! signal is periodic, as scipy's does. Computed in f64 (scipy computes in the input's
//! precision; the serving's input is float32).

use realfft::num_complex::Complex;
use realfft::RealFftPlanner;

/// The length the serving resamples `len` samples at `from` Hz to at `to` Hz:
/// `int(len · to / from)` (rounded down).
pub fn resampled_len(len: usize, from: u32, to: u32) -> usize {
    (len as u128 * u128::from(to) / u128::from(from.max(1))) as usize
}

/// `x` resampled to `num` samples (see the module). `num == x.len()` returns `x` unchanged;
/// an empty input or `num == 0` is an error.
pub fn resample(x: &[f32], num: usize) -> Result<Vec<f32>, String> {
    let n = x.len();
    if n == 0 || num == 0 {
        return Err(format!("cannot resample {n} samples to {num}"));
    }
    if num == n {
        return Ok(x.to_vec());
    }
    let mut planner = RealFftPlanner::<f64>::new();
    let forward = planner.plan_fft_forward(n);
    let mut input: Vec<f64> = x.iter().map(|v| f64::from(*v)).collect();
    let mut spectrum = forward.make_output_vec();
    forward.process(&mut input, &mut spectrum).map_err(|e| e.to_string())?;
    drop(input);
    let m = n.min(num);
    let kept = m / 2 + 1;
    let inverse = planner.plan_fft_inverse(num);
    let mut band = inverse.make_input_vec();
    band[..kept].copy_from_slice(&spectrum[..kept]);
    drop(spectrum);
    if m.is_multiple_of(2) {
        // The unpaired bin at m/2: its pair folds into it when shrinking, splits off when growing.
        band[m / 2] *= if num < n { 2.0 } else { 0.5 };
    }
    // The inverse real FFT reads only the real parts of the DC and (even length) Nyquist bins.
    band[0] = Complex::new(band[0].re, 0.0);
    if num.is_multiple_of(2) {
        band[num / 2] = Complex::new(band[num / 2].re, 0.0);
    }
    let mut out = inverse.make_output_vec();
    inverse.process(&mut band, &mut out).map_err(|e| e.to_string())?;
    // realfft's inverse is unnormalised (a factor num); scipy's irfft divides by num and the
    // resampling multiplies by num / n: together 1 / n.
    let scale = 1.0 / n as f64;
    Ok(out.iter().map(|v| (v * scale) as f32).collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lengths_round_down_as_the_serving_does() {
        assert_eq!(resampled_len(88_200, 44_100, 16_000), 32_000);
        assert_eq!(resampled_len(10, 3, 16_000), 53_333);
        assert_eq!(resampled_len(44_101, 44_100, 16_000), 16_000);
    }

    #[test]
    fn a_band_limited_tone_survives_both_ways() {
        // 440 Hz at 44.1 kHz for 0.5 s, periodic over the clip: exactly representable at
        // 16 kHz and back.
        let (n, rate) = (22_050usize, 44_100.0f64);
        let tone: Vec<f32> = (0..n).map(|t| (2.0 * std::f64::consts::PI * 440.0 * t as f64 / rate).sin() as f32).collect();
        let down = resample(&tone, 8_000).unwrap();
        for (t, v) in down.iter().enumerate() {
            let want = (2.0 * std::f64::consts::PI * 440.0 * t as f64 / 16_000.0).sin();
            assert!((f64::from(*v) - want).abs() < 1e-5, "{t}: {v} vs {want}");
        }
        let up = resample(&down, n).unwrap();
        let err = up.iter().zip(&tone).map(|(a, b)| (a - b).abs()).fold(0.0f32, f32::max);
        assert!(err < 1e-5, "{err}");
    }

    #[test]
    fn empty_or_zero_length_is_an_error() {
        assert!(resample(&[], 10).unwrap_err().contains("0 samples"));
        assert!(resample(&[1.0], 0).unwrap_err().contains("to 0"));
        assert_eq!(resample(&[1.0, 2.0], 2).unwrap(), vec![1.0, 2.0]);
    }
}
