//! Audio recordings as model inputs: each recording is decoded and mixed to mono
//! ([`crate::audio::read`]), resampled as a whole to the model's rate (as HeAR's serving does
//! with `scipy.signal.resample`), and cut into windows of the model's clip length every `hop`
//! seconds: windows start at 0, hop, 2·hop, … and stop at the first that reaches the end, so
//! with a hop no longer than the clip every sample is in at least one window; a recording
//! shorter than one clip is one padded window.

use crate::audio::read::{probe_seconds, read_audio, DEFAULT_MAX_SECONDS};
use crate::audio::resample::{resample, resampled_len};
use crate::engine::{Input, Source};
use crate::error::{PipelineError, Result};
use crate::files::Skipped;
use haidef_wsi_encoders::{AudioSpec, ImageRef};
use rayon::prelude::*;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};

/// How recordings are cut. Batch size and queue depth are the job's ([`crate::Job::batch_size`]; 32
/// windows unless set).
#[derive(Debug, Clone, Copy)]
#[non_exhaustive]
pub struct AudioOptions {
    /// Seconds between window starts (the window is the model's clip, 2 s for HeAR).
    pub hop_seconds: f64,
    /// Longer recordings are refused ([`DEFAULT_MAX_SECONDS`]).
    pub max_seconds: f64,
}

impl Default for AudioOptions {
    fn default() -> Self {
        AudioOptions { hop_seconds: 1.0, max_seconds: DEFAULT_MAX_SECONDS }
    }
}

impl AudioOptions {
    /// These options with another hop.
    pub fn hop_seconds(mut self, seconds: f64) -> Self {
        self.hop_seconds = seconds;
        self
    }

    /// These options with another length limit.
    pub fn max_seconds(mut self, seconds: f64) -> Self {
        self.max_seconds = seconds;
        self
    }
}

/// What identifies a window in the output.
#[derive(Debug, Clone, PartialEq)]
pub struct WindowKey {
    /// The file.
    pub path: String,
    /// Seconds from the start of the recording to the window's start.
    pub start_s: f64,
    /// Seconds from the start of the recording to the end of its audio in the window.
    pub end_s: f64,
    /// Whether the window ran past the end of the recording and was zero-padded.
    pub padded: bool,
}

/// One window's samples at the model's rate.
#[derive(Debug, Clone)]
pub struct Clip {
    samples: Vec<f32>,
}

impl Input for Clip {
    fn image(&self) -> ImageRef<'_> {
        ImageRef::f32(self.samples.len(), 1, 1, &self.samples)
    }
}

impl Clip {
    /// One clip of `samples` at `rate` Hz as the model takes it: resampled as a whole to the
    /// model's rate (as the job resamples a recording) and then exactly the model's clip length,
    /// which HeAR's serving requires (it refuses other lengths; the resampled length is rounded
    /// down, as there). The error says which length was expected.
    pub fn from_samples(samples: &[f32], rate: u32, audio: &AudioSpec) -> std::result::Result<Clip, String> {
        let model_rate = audio.sample_rate;
        let seconds = audio.clip_samples as f64 / f64::from(model_rate);
        if rate == 0 {
            return Err("the sample rate must be at least 1 Hz, not 0".into());
        }
        if let Some(i) = samples.iter().position(|v| !v.is_finite()) {
            return Err(format!("sample {i} is {}: samples must be finite numbers (full scale ±1)", samples[i]));
        }
        let n = resampled_len(samples.len(), rate, model_rate);
        if n != audio.clip_samples {
            let at_rate = seconds * f64::from(rate);
            return Err(format!(
                "a clip must be {seconds} s: {} samples at {model_rate} Hz ({at_rate} at {rate} Hz); got {} samples ({:.4} s). Cut recordings into clips, or embed whole files with the audio job",
                audio.clip_samples,
                samples.len(),
                samples.len() as f64 / f64::from(rate)
            ));
        }
        Ok(Clip { samples: resample(samples, n)? })
    }
}

/// Window starts (in samples) over `len` samples for clips of `clip` samples every `hop`:
/// `(start, padded)`, stopping at the first window that reaches the end, or before a start
/// past the end (a hop longer than the clip leaves gaps).
pub(crate) fn window_starts(len: usize, clip: usize, hop: usize) -> Vec<(usize, bool)> {
    let mut out = Vec::with_capacity(window_count(len, clip, hop));
    let mut start = 0usize;
    loop {
        let end = start.saturating_add(clip);
        out.push((start, end > len));
        match start.checked_add(hop) {
            Some(next) if end < len && hop > 0 && next < len => start = next,
            _ => return out,
        }
    }
}

/// How many windows [`window_starts`] gives, counted without listing them.
pub(crate) fn window_count(len: usize, clip: usize, hop: usize) -> usize {
    if len <= clip || hop == 0 {
        return 1;
    }
    // Starts 0, hop, 2·hop, … below len, up to the first whose window reaches the end.
    ((len - clip).div_ceil(hop) + 1).min((len - 1) / hop + 1)
}

/// The recording at `path`, mono at `rate` Hz.
pub(crate) fn signal_at(path: &Path, rate: u32, max_seconds: f64) -> Result<Vec<f32>> {
    let rec = read_audio(path, max_seconds)?;
    if rec.sample_rate == rate {
        return Ok(rec.samples);
    }
    let n = resampled_len(rec.samples.len(), rec.sample_rate, rate);
    if n == 0 {
        return Err(PipelineError::Input {
            path: path.display().to_string(),
            problem: format!("{} samples at {} Hz are less than one sample at {rate} Hz", rec.samples.len(), rec.sample_rate),
        });
    }
    resample(&rec.samples, n).map_err(|problem| PipelineError::Input { path: path.display().to_string(), problem })
}

/// A recording's windows at the model's rate: keys and samples.
fn recording_windows(path: &Path, audio: &AudioSpec, opts: &AudioOptions) -> Result<Vec<(WindowKey, Clip)>> {
    let rate = audio.sample_rate;
    let signal = signal_at(path, rate, opts.max_seconds)?;
    let hop = hop_samples(opts, audio);
    let (clip, len, rate) = (audio.clip_samples, signal.len(), f64::from(rate));
    Ok(window_starts(len, clip, hop)
        .into_iter()
        .map(|(start, padded)| {
            let end = (start + clip).min(len);
            let mut samples = signal[start..end].to_vec();
            samples.resize(clip, 0.0);
            let key = WindowKey { path: path.display().to_string(), start_s: start as f64 / rate, end_s: end as f64 / rate, padded };
            (key, Clip { samples })
        })
        .collect())
}

/// Windows a file's header announces (1 where it does not say; the length capped at the
/// limit): for progress only.
fn expected_windows(path: &Path, audio: &AudioSpec, opts: &AudioOptions) -> usize {
    probe_seconds(path)
        .map(|s| {
            let len = (s.min(opts.max_seconds) * f64::from(audio.sample_rate)) as usize;
            window_count(len, audio.clip_samples, hop_samples(opts, audio))
        })
        .unwrap_or(1)
}

fn hop_samples(opts: &AudioOptions, audio: &AudioSpec) -> usize {
    (opts.hop_seconds * f64::from(audio.sample_rate)).round() as usize
}

/// The audio source: decodes files a few at a time in parallel and yields their windows in
/// order.
pub struct AudioWindows {
    files: Vec<PathBuf>,
    audio: AudioSpec,
    opts: AudioOptions,
    expected: usize,
}

impl AudioWindows {
    /// A source over `files` for a model taking `audio`.
    pub(crate) fn new(files: Vec<PathBuf>, audio: AudioSpec, opts: AudioOptions) -> Self {
        let expected = files.iter().map(|f| expected_windows(f, &audio, &opts)).sum();
        AudioWindows { files, audio, opts, expected }
    }
}

impl Source for AudioWindows {
    type Key = WindowKey;
    type Input = Clip;

    fn len(&self) -> usize {
        self.expected
    }

    fn run(&mut self, emit: &mut dyn FnMut(WindowKey, Clip) -> bool, skip: &mut dyn FnMut(Skipped), cancel: &AtomicBool) -> Result<()> {
        let (audio, opts) = (self.audio, self.opts);
        for chunk in self.files.chunks(rayon::current_num_threads().max(1)) {
            if cancel.load(Ordering::Relaxed) {
                return Err(PipelineError::Cancelled);
            }
            let decoded: Vec<std::result::Result<Vec<(WindowKey, Clip)>, Skipped>> = chunk
                .par_iter()
                .map(|p| recording_windows(p, &audio, &opts).map_err(|e| Skipped { path: p.display().to_string(), error: e.to_string() }))
                .collect();
            for d in decoded {
                match d {
                    Ok(windows) => {
                        for (key, clip) in windows {
                            if !emit(key, clip) {
                                return Ok(());
                            }
                        }
                    }
                    Err(s) => skip(s),
                }
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_clip_is_resampled_and_must_have_the_model_length() {
        let spec = haidef_wsi_encoders::hear::audio_spec();
        let same: Vec<f32> = (0..32_000).map(|i| (i as f32 * 0.01).sin() * 0.5).collect();
        assert_eq!(Clip::from_samples(&same, 16_000, &spec).unwrap().samples, same);
        // 44.1 kHz: 88,200 samples are 2 s; scipy's resample of a pure tone keeps it.
        let tone = |rate: f64, n: usize| (0..n).map(|i| (std::f64::consts::TAU * 440.0 * i as f64 / rate).sin() as f32).collect::<Vec<f32>>();
        let clip = Clip::from_samples(&tone(44_100.0, 88_200), 44_100, &spec).unwrap();
        let want = tone(16_000.0, 32_000);
        let worst = clip.samples.iter().zip(&want).map(|(a, b)| (a - b).abs()).fold(0.0, f32::max);
        assert!(worst < 1e-3, "{worst}");
        let e = Clip::from_samples(&same[..16_000], 16_000, &spec).unwrap_err();
        assert!(e.contains("2 s: 32000 samples at 16000 Hz") && e.contains("got 16000 samples"), "{e}");
        let e = Clip::from_samples(&tone(44_100.0, 44_100), 44_100, &spec).unwrap_err();
        assert!(e.contains("88200 at 44100 Hz"), "{e}");
        let mut nan = same.clone();
        nan[7] = f32::NAN;
        assert!(Clip::from_samples(&nan, 16_000, &spec).unwrap_err().contains("sample 7 is NaN"));
        assert!(Clip::from_samples(&same, 0, &spec).unwrap_err().contains("0"));
    }

    #[test]
    fn windows_cover_every_sample_and_pad_only_the_last() {
        assert_eq!(window_starts(32_000, 32_000, 16_000), vec![(0, false)]);
        assert_eq!(window_starts(40_000, 32_000, 16_000), vec![(0, false), (16_000, true)]);
        assert_eq!(window_starts(48_000, 32_000, 16_000), vec![(0, false), (16_000, false)]);
        assert_eq!(window_starts(1_600, 32_000, 16_000), vec![(0, true)]);
        // Hop longer than the clip: gaps, as asked, and no start past the end.
        assert_eq!(window_starts(100_000, 32_000, 48_000), vec![(0, false), (48_000, false), (96_000, true)]);
        assert_eq!(window_starts(40_000, 32_000, 48_000), vec![(0, false)]);
        assert_eq!(window_starts(40_000, 32_000, usize::MAX), vec![(0, false)]);
        for (len, clip, hop) in [(1, 32, 16), (32, 32, 16), (40, 32, 16), (48, 32, 16), (100, 32, 48), (40, 32, 48), (1000, 32, 7), (5, 32, 0)] {
            assert_eq!(window_count(len, clip, hop), window_starts(len, clip, hop).len(), "{len} {clip} {hop}");
        }
    }
}
