//! The audio job: audio files → 2 s windows → an audio encoder (HeAR) → Parquet, one row per
//! window: `path` (Utf8), `start_s`, `end_s` (Float64, seconds into the recording; `end_s` is
//! where the recording's audio in the window ends), `padded` (Boolean: the window ran past
//! the end and was filled with zeros), `embedding`.
//!
//! Each recording is decoded and mixed to mono ([`crate::audio`]), resampled as a whole to the
//! model's rate ([`crate::resample`], as HeAR's serving does with `scipy.signal.resample`), and
//! cut into windows of the model's clip length every `hop` seconds (default 1 s): windows start
//! at 0, hop, 2·hop, … and stop at the first that reaches the end, so with a hop no longer
//! than the clip every sample is in at least one window; a recording shorter than one clip is
//! one padded window. Files that cannot
//! be used are skipped and listed in the file's metadata (`failed_files`, JSON), with
//! `windows_embedded`.

use crate::audio::{read_audio, DEFAULT_MAX_SECONDS};
use crate::engine::{self, EngineOptions, Input, Sink, Source, StageTimes};
use crate::error::{PipelineError, Result};
use crate::files::Skipped;
use crate::resample::{resample, resampled_len};
use crate::sink::{provenance, ParquetSink};
use arrow_array::{ArrayRef, BooleanArray, Float64Array, StringArray};
use arrow_schema::{DataType, Field};
use haidef_wsi_encoders::{AudioSpec, Encoder, ImageRef};
use rayon::prelude::*;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Instant;

/// How the audio job runs.
#[derive(Debug, Clone, Copy)]
pub struct AudioJobOptions {
    /// Windows per encoder batch.
    pub batch_size: usize,
    /// Batches in flight between two stages.
    pub queue_depth: usize,
    /// Seconds between window starts (the window is the model's clip, 2 s for HeAR).
    pub hop_seconds: f64,
    /// Longer recordings are refused ([`DEFAULT_MAX_SECONDS`]).
    pub max_seconds: f64,
}

impl Default for AudioJobOptions {
    fn default() -> Self {
        AudioJobOptions { batch_size: 32, queue_depth: 4, hop_seconds: 1.0, max_seconds: DEFAULT_MAX_SECONDS }
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

/// Window starts (in samples) over `len` samples for clips of `clip` samples every `hop`:
/// `(start, padded)`, stopping at the first window that reaches the end, or before a start
/// past the end (a hop longer than the clip leaves gaps).
pub fn window_starts(len: usize, clip: usize, hop: usize) -> Vec<(usize, bool)> {
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
pub fn window_count(len: usize, clip: usize, hop: usize) -> usize {
    if len <= clip || hop == 0 {
        return 1;
    }
    // Starts 0, hop, 2·hop, … below len, up to the first whose window reaches the end.
    ((len - clip).div_ceil(hop) + 1).min((len - 1) / hop + 1)
}

/// The recording at `path`, mono at `rate` Hz.
fn signal_at(path: &Path, rate: u32, max_seconds: f64) -> Result<Vec<f32>> {
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
fn recording_windows(path: &Path, audio: &AudioSpec, opts: &AudioJobOptions) -> Result<Vec<(WindowKey, Clip)>> {
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
fn expected_windows(path: &Path, audio: &AudioSpec, opts: &AudioJobOptions) -> usize {
    crate::audio::probe_seconds(path)
        .map(|s| {
            let len = (s.min(opts.max_seconds) * f64::from(audio.sample_rate)) as usize;
            window_count(len, audio.clip_samples, hop_samples(opts, audio))
        })
        .unwrap_or(1)
}

fn hop_samples(opts: &AudioJobOptions, audio: &AudioSpec) -> usize {
    (opts.hop_seconds * f64::from(audio.sample_rate)).round() as usize
}

/// The audio source: decodes files a few at a time in parallel and yields their windows in
/// order.
pub struct AudioWindows<'a> {
    files: Vec<PathBuf>,
    audio: AudioSpec,
    opts: AudioJobOptions,
    expected: usize,
    on_skip: &'a (dyn Fn(&Skipped) + Sync),
    /// The files skipped so far.
    pub skipped: Vec<Skipped>,
}

impl<'a> AudioWindows<'a> {
    /// A source over `files` for a model taking `audio`; `on_skip` hears of each skipped file.
    pub fn new(files: Vec<PathBuf>, audio: AudioSpec, opts: AudioJobOptions, on_skip: &'a (dyn Fn(&Skipped) + Sync)) -> Self {
        let expected = files.iter().map(|f| expected_windows(f, &audio, &opts)).sum();
        AudioWindows { files, audio, opts, expected, on_skip, skipped: Vec::new() }
    }
}

impl Source for AudioWindows<'_> {
    type Key = WindowKey;
    type Input = Clip;

    fn len(&self) -> usize {
        self.expected
    }

    fn run(&mut self, emit: &mut dyn FnMut(WindowKey, Clip) -> bool, cancel: &AtomicBool) -> Result<()> {
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
                    Err(s) => {
                        (self.on_skip)(&s);
                        self.skipped.push(s);
                    }
                }
            }
        }
        Ok(())
    }
}

struct WindowSink {
    parquet: ParquetSink,
    /// The first recording's path and embeddings, kept for the picture.
    first: Option<(String, Vec<f32>)>,
    keep_first: bool,
}

impl Sink<WindowKey> for WindowSink {
    fn write(&mut self, keys: Vec<WindowKey>, embeddings: &[f32]) -> Result<()> {
        let columns: Vec<ArrayRef> = vec![
            Arc::new(StringArray::from_iter_values(keys.iter().map(|k| k.path.as_str()))),
            Arc::new(Float64Array::from_iter_values(keys.iter().map(|k| k.start_s))),
            Arc::new(Float64Array::from_iter_values(keys.iter().map(|k| k.end_s))),
            Arc::new(BooleanArray::from(keys.iter().map(|k| k.padded).collect::<Vec<_>>())),
        ];
        if self.keep_first {
            let dim = embeddings.len() / keys.len().max(1);
            for (k, e) in keys.iter().zip(embeddings.chunks_exact(dim.max(1))) {
                let first = self.first.get_or_insert_with(|| (k.path.clone(), Vec::new()));
                if first.0 == k.path {
                    first.1.extend_from_slice(e);
                }
            }
        }
        self.parquet.write_columns(columns, embeddings)
    }
}

/// What the audio job did.
#[derive(Debug, Clone)]
pub struct AudioJobSummary {
    /// Windows embedded (rows written).
    pub embedded: usize,
    /// Files skipped, with their errors.
    pub skipped: Vec<Skipped>,
    /// The Parquet file written.
    pub output: PathBuf,
    /// The picture written, if one was asked for and a recording was embedded.
    pub picture: Option<PathBuf>,
    /// Wall time.
    pub seconds: f64,
    /// Busy time per stage.
    pub stages: StageTimes,
}

/// The audio job, set up step by step and then run:
///
/// ```no_run
/// # fn main() -> Result<(), Box<dyn std::error::Error>> {
/// use haidef_wsi::{audio::find_audio, audio_job::AudioJob, encoders::{candle::{DType, Device}, registry}};
/// let entry = registry::find("hear")?;
/// let model = entry.untrained(&Device::Cpu, DType::F32)?; // or entry.load(folder, ..)
/// let files = find_audio(&["recordings/".into()])?;
/// let summary = AudioJob::new(files, model.as_ref(), "audio.parquet").model_name(entry.name).run()?;
/// println!("{} windows, {} files skipped", summary.embedded, summary.skipped.len());
/// # Ok(()) }
/// ```
pub struct AudioJob<'a> {
    files: Vec<PathBuf>,
    encoder: &'a dyn Encoder,
    out: PathBuf,
    model_name: Option<&'a str>,
    options: AudioJobOptions,
    picture: Option<PathBuf>,
    cancel: Option<&'a AtomicBool>,
    progress: Option<&'a (dyn Fn(usize, usize) + Sync)>,
    on_skip: Option<&'a (dyn Fn(&Skipped) + Sync)>,
}

impl<'a> AudioJob<'a> {
    /// Embeds the windows of `files` with the audio model `encoder` into the Parquet file `out`
    /// (written atomically; also when every file was skipped, so that the file says why).
    pub fn new(files: Vec<PathBuf>, encoder: &'a dyn Encoder, out: impl AsRef<Path>) -> Self {
        AudioJob { files, encoder, out: out.as_ref().to_path_buf(), model_name: None, options: AudioJobOptions::default(), picture: None, cancel: None, progress: None, on_skip: None }
    }

    /// The name the model was chosen by, recorded as `model` in the file's metadata.
    pub fn model_name(mut self, name: &'a str) -> Self {
        self.model_name = Some(name);
        self
    }

    /// Batch size, queue depth, hop and length limit.
    pub fn options(mut self, options: AudioJobOptions) -> Self {
        self.options = options;
        self
    }

    /// Also draws the first recording's spectrogram beside its windows' embedding similarity
    /// into this PNG ([`crate::audio_picture`]).
    #[cfg(feature = "heatmaps")]
    pub fn picture(mut self, png: impl AsRef<Path>) -> Self {
        self.picture = Some(png.as_ref().to_path_buf());
        self
    }

    /// A flag that stops the job promptly when set (nothing is left half-written).
    pub fn cancel(mut self, flag: &'a AtomicBool) -> Self {
        self.cancel = Some(flag);
        self
    }

    /// Called with (windows written, windows expected from the files' headers) after each
    /// batch is written.
    pub fn progress(mut self, progress: &'a (dyn Fn(usize, usize) + Sync)) -> Self {
        self.progress = Some(progress);
        self
    }

    /// Called with each file that is skipped, and why.
    pub fn on_skip(mut self, on_skip: &'a (dyn Fn(&Skipped) + Sync)) -> Self {
        self.on_skip = Some(on_skip);
        self
    }

    /// Runs the job.
    pub fn run(self) -> Result<AudioJobSummary> {
        let start = Instant::now();
        let encoder = self.encoder;
        let audio = *encoder.audio_spec().ok_or_else(|| {
            PipelineError::Options(format!("{} is not an audio model; choose one that takes audio (hear)", encoder.model_id()))
        })?;
        let opts = self.options;
        if !(opts.hop_seconds.is_finite() && opts.hop_seconds * f64::from(audio.sample_rate) >= 1.0) {
            return Err(PipelineError::Options(format!("hop must be at least one sample (1/{} s), got {} s", audio.sample_rate, opts.hop_seconds)));
        }
        if !(opts.max_seconds.is_finite() && opts.max_seconds > 0.0) {
            return Err(PipelineError::Options(format!("the length limit must be positive, got {} s", opts.max_seconds)));
        }
        let never = AtomicBool::new(false);
        let cancel = self.cancel.unwrap_or(&never);
        let progress = self.progress.unwrap_or(&|_, _| {});
        let on_skip = self.on_skip.unwrap_or(&|_| {});
        let mut meta = provenance(encoder);
        if let Some(name) = self.model_name {
            meta.insert("model".to_string(), name.to_string());
        }
        meta.insert(
            "audio_preprocessing".to_string(),
            format!(
                "channels averaged; resampled to {} Hz (scipy.signal.resample, FFT, whole recording); windows of {} samples every {} s, the last zero-padded",
                audio.sample_rate, audio.clip_samples, opts.hop_seconds
            ),
        );
        meta.insert("hop_seconds".to_string(), opts.hop_seconds.to_string());
        let keys = vec![
            Field::new("path", DataType::Utf8, false),
            Field::new("start_s", DataType::Float64, false),
            Field::new("end_s", DataType::Float64, false),
            Field::new("padded", DataType::Boolean, false),
        ];
        let parquet = ParquetSink::create_with(&self.out, keys, &encoder.output().shape(), meta)?;
        let mut sink = WindowSink { parquet, first: None, keep_first: self.picture.is_some() };
        let mut source = AudioWindows::new(self.files, audio, opts, on_skip);
        let engine_opts = EngineOptions { batch_size: opts.batch_size, queue_depth: opts.queue_depth };
        let report = engine::run(&mut source, encoder, &mut sink, engine_opts, cancel, progress)?;
        let failed: Vec<serde_json::Value> = source.skipped.iter().map(|s| serde_json::json!({"path": s.path, "error": s.error})).collect();
        sink.parquet.append_metadata("windows_embedded", &report.rows.to_string());
        sink.parquet.append_metadata("failed_files", &serde_json::Value::Array(failed).to_string());
        let output = sink.parquet.finish()?;
        let picture = match (&self.picture, &sink.first) {
            (Some(png), Some((path, embeddings))) => Some(draw_picture(Path::new(path), embeddings, encoder.embedding_dim(), &audio, &opts, png)?),
            _ => None,
        };
        Ok(AudioJobSummary { embedded: report.rows, skipped: source.skipped, output, picture, seconds: start.elapsed().as_secs_f64(), stages: report.stages })
    }
}

#[cfg(feature = "heatmaps")]
fn draw_picture(path: &Path, embeddings: &[f32], dim: usize, audio: &AudioSpec, opts: &AudioJobOptions, png: &Path) -> Result<PathBuf> {
    use crate::audio_picture::{cosine_matrix, draw, recording_spectrogram};
    use haidef_wsi_encoders::FrontEndConfig;
    let signal = signal_at(path, audio.sample_rate, opts.max_seconds)?;
    let base = FrontEndConfig { sample_rate: audio.sample_rate, ..FrontEndConfig::hear() };
    let (spectrogram, frames) = recording_spectrogram(&signal, &base)?;
    let n = embeddings.len() / dim.max(1);
    draw(&spectrogram, frames, base.mel_bins, &cosine_matrix(embeddings, dim), n, png)
}

#[cfg(not(feature = "heatmaps"))]
fn draw_picture(_: &Path, _: &[f32], _: usize, _: &AudioSpec, _: &AudioJobOptions, _: &Path) -> Result<PathBuf> {
    Err(PipelineError::Options("pictures need the heatmaps feature".into()))
}

#[cfg(test)]
mod tests {
    use super::*;

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
