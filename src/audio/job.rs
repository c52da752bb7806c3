//! The audio job: audio files → 2 s windows ([`AudioWindows`]) → an audio encoder (HeAR) →
//! Parquet, one row per window: `path` (Utf8), `start_s`, `end_s` (Float64, seconds into the
//! recording; `end_s` is where the recording's audio in the window ends), `padded` (Boolean:
//! the window ran past the end and was filled with zeros), `embedding`. Files that cannot be
//! used are skipped and listed in the file's metadata (`failed_files`, JSON), with
//! `windows_embedded`.

use crate::audio::windows::{AudioOptions, AudioWindows, WindowKey};
use crate::error::{PipelineError, Result};
use crate::files::files_metadata;
use crate::job::{Finishing, Job, Modality, Opened, Opening, OutputLayout};
use arrow_array::{ArrayRef, BooleanArray, Float64Array, StringArray};
use arrow_schema::{DataType, Field};
use haidef_wsi_encoders::{AudioSpec, Encoder};
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// The audio modality: windows of recordings.
pub struct Audio {
    files: Vec<PathBuf>,
    options: AudioOptions,
    picture: Option<PathBuf>,
    /// The first recording embedded: the one the picture shows.
    first: std::cell::OnceCell<String>,
}

/// What an audio job reports beside the shared [`crate::JobSummary`] fields.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct AudioReport {
    /// The picture written, if one was asked for and a recording was embedded (also in
    /// `outputs`, after the Parquet file).
    pub picture: Option<PathBuf>,
}

/// What an audio job did.
pub type AudioJobSummary = crate::job::JobSummary<AudioReport>;

/// The audio job, set up step by step and then run (a [`Job`] of [`Audio`]):
///
/// ```no_run
/// # fn main() -> Result<(), Box<dyn std::error::Error>> {
/// use haidef_wsi::{encoders::{candle::{DType, Device}, registry}, find_audio, AudioJob};
/// let entry = registry::find("hear")?;
/// let model = entry.untrained(&Device::Cpu, DType::F32)?; // or entry.load(folder, ..)
/// let files = find_audio(&["recordings/".into()])?;
/// let summary = AudioJob::new(files, model.as_ref(), "audio.parquet").model_name(entry.name).run()?;
/// println!("{} windows, {} files skipped", summary.embedded, summary.skipped.len());
/// # Ok(()) }
/// ```
pub type AudioJob<'a> = Job<'a, Audio>;

impl<'a> Job<'a, Audio> {
    /// Embeds the windows of `files` with the audio model `encoder` into the Parquet file `out`
    /// (written atomically; also when every file was skipped, so that the file says why).
    pub fn new(files: Vec<PathBuf>, encoder: &'a dyn Encoder, out: impl AsRef<Path>) -> Self {
        Job::of(Audio { files, options: AudioOptions::default(), picture: None, first: Default::default() }, encoder, out)
    }

    /// Hop and length limit.
    pub fn options(mut self, options: AudioOptions) -> Self {
        self.modality_mut().options = options;
        self
    }

    /// Also draws the first recording's spectrogram beside its windows' embedding similarity
    /// into this PNG (before the Parquet file is committed: a picture that fails fails the job).
    #[cfg(feature = "heatmaps")]
    pub fn picture(mut self, png: impl AsRef<Path>) -> Self {
        self.modality_mut().picture = Some(png.as_ref().to_path_buf());
        self
    }
}

impl Modality for Audio {
    type Source = AudioWindows;
    type Report = AudioReport;
    const LAYOUT: OutputLayout = OutputLayout::File;
    const DEFAULT_BATCH_SIZE: usize = 32;

    fn open(&mut self, opening: Opening<'_>) -> Result<Opened<AudioWindows>> {
        let encoder = opening.encoder;
        let audio = *encoder
            .audio_spec()
            .ok_or_else(|| PipelineError::Options(format!("{} is not an audio model; choose one that takes audio (hear)", encoder.model_id())))?;
        let opts = self.options;
        if !(opts.hop_seconds.is_finite() && opts.hop_seconds * f64::from(audio.sample_rate) >= 1.0) {
            return Err(PipelineError::Options(format!("hop must be at least one sample (1/{} s), got {} s", audio.sample_rate, opts.hop_seconds)));
        }
        if !(opts.max_seconds.is_finite() && opts.max_seconds > 0.0) {
            return Err(PipelineError::Options(format!("the length limit must be positive, got {} s", opts.max_seconds)));
        }
        let meta = opening.metadata;
        meta.insert(
            "audio_preprocessing".to_string(),
            format!(
                "channels averaged; resampled to {} Hz (scipy.signal.resample, FFT, whole recording); windows of {} samples every {} s, the last zero-padded",
                audio.sample_rate, audio.clip_samples, opts.hop_seconds
            ),
        );
        meta.insert("hop_seconds".to_string(), opts.hop_seconds.to_string());
        let source = AudioWindows::new(std::mem::take(&mut self.files), audio, opts);
        let keys = vec![
            Field::new("path", DataType::Utf8, false),
            Field::new("start_s", DataType::Float64, false),
            Field::new("end_s", DataType::Float64, false),
            Field::new("padded", DataType::Boolean, false),
        ];
        Ok(Opened { source, keys })
    }

    fn key_columns(&self, keys: &[WindowKey]) -> Vec<ArrayRef> {
        vec![
            Arc::new(StringArray::from_iter_values(keys.iter().map(|k| k.path.as_str()))),
            Arc::new(Float64Array::from_iter_values(keys.iter().map(|k| k.start_s))),
            Arc::new(Float64Array::from_iter_values(keys.iter().map(|k| k.end_s))),
            Arc::new(BooleanArray::from(keys.iter().map(|k| k.padded).collect::<Vec<_>>())),
        ]
    }

    fn keeps_row(&self, key: &WindowKey) -> bool {
        // The picture needs the first recording's windows, and only those.
        self.picture.is_some() && self.first.get_or_init(|| key.path.clone()) == &key.path
    }

    fn finish(&mut self, _source: AudioWindows, done: &mut Finishing<'_, WindowKey>) -> Result<AudioReport> {
        done.metadata.extend(files_metadata("windows_embedded", done.rows, done.skipped));
        let (Some(png), Some(first)) = (&self.picture, done.keys.first()) else { return Ok(AudioReport { picture: None }) };
        let audio = done.encoder.audio_spec().expect("open checked that the model takes audio");
        let picture = draw_picture(Path::new(&first.path), done.embeddings, done.dim, audio, self.options.max_seconds, png)?;
        done.pictures.push(picture.clone());
        Ok(AudioReport { picture: Some(picture) })
    }
}

#[cfg(feature = "heatmaps")]
fn draw_picture(path: &Path, embeddings: &[f32], dim: usize, audio: &AudioSpec, max_seconds: f64, png: &Path) -> Result<PathBuf> {
    use crate::audio::picture::{cosine_matrix, draw, recording_spectrogram};
    use crate::audio::windows::signal_at;
    use haidef_wsi_encoders::FrontEndConfig;
    let signal = signal_at(path, audio.sample_rate, max_seconds)?;
    let base = FrontEndConfig { sample_rate: audio.sample_rate, ..FrontEndConfig::hear() };
    let (spectrogram, frames) = recording_spectrogram(&signal, &base)?;
    let n = embeddings.len() / dim.max(1);
    draw(&spectrogram, frames, base.mel_bins, &cosine_matrix(embeddings, dim), n, png)
}

#[cfg(not(feature = "heatmaps"))]
fn draw_picture(_: &Path, _: &[f32], _: usize, _: &AudioSpec, _: f64, _: &Path) -> Result<PathBuf> {
    Err(PipelineError::Options("pictures need the heatmaps feature".into()))
}
