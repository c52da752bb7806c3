//! Audio files as inputs: WAV (integer PCM of 8 to 32 bits, 32/64-bit float, A-law, µ-law,
//! ADPCM, also WAVE_FORMAT_EXTENSIBLE), FLAC, Ogg Vorbis and MP3, decoded with symphonia and
//! mixed down to one channel; the WAV files symphonia refuses (big-endian RIFX, RF64, PCM of
//! 12, 20 or 40 bits, inconsistent RIFF sizes) through [`crate::audio::wav`].
//!
//! Samples become floats as Google's HeAR serving scales them (`int16 / 2^15`, `int32 / 2^31`;
//! symphonia scales 8-bit by 2^7 around 128 and 24-bit by 2^23, the same full scale), and
//! channels are averaged (the serving's `np.mean(audio, axis=1)`). A file that cannot be used
//! is an error naming it and what is wrong: not audio, no audio track, a codec symphonia lacks,
//! a corrupt packet, a data chunk shorter than its header says (truncated), NaN or infinite
//! samples, no samples, or longer than the limit.

use crate::error::{PipelineError, Result};
use std::path::{Path, PathBuf};
use symphonia::core::audio::SampleBuffer;
use symphonia::core::codecs::{DecoderOptions, CODEC_TYPE_NULL};
use symphonia::core::errors::Error as SymphoniaError;
use symphonia::core::formats::FormatOptions;
use symphonia::core::io::MediaSourceStream;
use symphonia::core::meta::MetadataOptions;
use symphonia::core::probe::Hint;

/// File name extensions searched for in folders.
pub const EXTENSIONS: &[&str] = &["wav", "wave", "flac", "ogg", "oga", "mp3"];

/// The longest recording read by default: 20 minutes. The FFT resampling holds the whole
/// recording (about 20 bytes per sample at the file's rate); split longer recordings, or raise
/// the limit where memory allows.
pub const DEFAULT_MAX_SECONDS: f64 = 1200.0;

/// A decoded recording, mixed to one channel.
#[derive(Debug, Clone)]
pub struct Recording {
    /// The file.
    pub path: PathBuf,
    /// Samples per second in the file.
    pub sample_rate: u32,
    /// Channels in the file (averaged into `samples`).
    pub channels: usize,
    /// The mono samples at `sample_rate`, full scale ±1.
    pub samples: Vec<f32>,
}

impl Recording {
    /// Length in seconds.
    pub fn seconds(&self) -> f64 {
        self.samples.len() as f64 / f64::from(self.sample_rate)
    }
}

/// Decodes the audio file at `path` (format from its bytes, helped by its extension) and
/// averages its channels, refusing recordings longer than `max_seconds`.
pub fn read_audio(path: &Path, max_seconds: f64) -> Result<Recording> {
    let fail = |problem: String| PipelineError::Input { path: path.display().to_string(), problem };
    let file = std::fs::File::open(path).map_err(|e| fail(format!("cannot open: {e}")))?;
    let len = file.metadata().map_err(|e| fail(format!("cannot read: {e}")))?.len();
    if len == 0 {
        return Err(fail("the file is empty".into()));
    }
    let mut magic = [0u8; 4];
    let _ = std::io::Read::read(&mut &file, &mut magic);
    // symphonia reads neither RIFX nor RF64: straight to the plain WAV reader.
    if matches!(&magic, b"RIFX" | b"RF64" | b"BW64") {
        return from_plain_wav(path, 0, max_seconds).map_err(fail);
    }
    // The tags' declared lengths, checked before symphonia allocates them; ID3v2 tags skipped.
    let start = crate::audio::guard::check(&file, len).map_err(fail)?;
    if start > 0 {
        std::io::Seek::seek(&mut &file, std::io::SeekFrom::Start(start)).map_err(|e| fail(format!("cannot read: {e}")))?;
        magic = [0u8; 4];
        let _ = std::io::Read::read(&mut &file, &mut magic);
    }
    let window = crate::audio::guard::AudioWindow::new(file, start, len).map_err(|e| fail(format!("cannot read: {e}")))?;
    let mss = MediaSourceStream::new(Box::new(window), Default::default());
    let mut hint = Hint::new();
    if let Some(ext) = path.extension().and_then(|e| e.to_str()) {
        hint.with_extension(ext);
    }
    // Gapless: an MP3 encoder's delay and padding (LAME header) are trimmed.
    let formats = FormatOptions { enable_gapless: true, ..FormatOptions::default() };
    let probe = || symphonia::default::get_probe().format(&hint, mss, &formats, &MetadataOptions::default());
    let probed = match unpanicked(probe).and_then(|r| r.map_err(|e| e.to_string())) {
        Ok(p) => p,
        // A WAV symphonia refuses (odd bit depths, sizes that disagree): the plain reader.
        Err(e) if crate::audio::wav::is_wav_magic(&magic) => {
            return from_plain_wav(path, start, max_seconds).map_err(|plain| fail(format!("not a readable WAV file ({plain}; symphonia: {e})")));
        }
        Err(e) => {
            let advice = if e.contains("end of stream") {
                ": the file ends inside its header (truncated, or not audio)"
            } else {
                "; WAV, FLAC, Ogg Vorbis and MP3 are supported"
            };
            return Err(fail(format!("not a readable audio file ({e}){advice}")));
        }
    };
    let mut format = probed.format;
    let track = format.tracks().iter().find(|t| t.codec_params.codec != CODEC_TYPE_NULL).ok_or_else(|| fail("no audio track".into()))?;
    let (track_id, params) = (track.id, track.codec_params.clone());
    let rate = params.sample_rate.filter(|r| *r > 0).ok_or_else(|| fail("no sample rate in the header".into()))?;
    let max_frames = (max_seconds * f64::from(rate)).ceil() as u64;
    // WAV and FLAC headers state the frame count; MP3's is an estimate from the first frames
    // (trailing tags inflate it), so only the first two are held to it.
    let exact = if matches!(&magic, b"RIFF" | b"fLaC") { params.n_frames } else { None };
    if let Some(n) = exact.filter(|n| *n > max_frames) {
        return Err(fail(format!(
            "{:.1} s long; at most {max_seconds} s are read (the whole recording is resampled at once); split it or raise the limit",
            n as f64 / f64::from(rate)
        )));
    }
    let mut decoder = unpanicked(|| symphonia::default::get_codecs().make(&params, &DecoderOptions::default()))
        .map_err(fail)?
        .map_err(|e| fail(format!("cannot decode its codec ({e})")))?;
    // Reserved from the header, but never more than 4M samples up front (a header may lie).
    let mut mono: Vec<f32> = Vec::with_capacity(exact.unwrap_or(0).min(max_frames).min(1 << 22) as usize);
    let mut channels = params.channels.map(|c| c.count()).unwrap_or(0);
    let mut buf: Option<SampleBuffer<f32>> = None;
    loop {
        let packet = match unpanicked(|| format.next_packet()).map_err(fail)? {
            Ok(p) => p,
            // symphonia's end of stream.
            Err(SymphoniaError::IoError(e)) if e.kind() == std::io::ErrorKind::UnexpectedEof => break,
            Err(e) => return Err(fail(format!("cannot read packet after {:.3} s: {e}", mono.len() as f64 / f64::from(rate)))),
        };
        if packet.track_id() != track_id {
            continue;
        }
        let at = mono.len() as f64 / f64::from(rate);
        let decoded = unpanicked(|| decoder.decode(&packet)).map_err(fail)?.map_err(|e| fail(format!("cannot decode the audio at {at:.3} s: {e}")))?;
        let spec = *decoded.spec();
        let ch = spec.channels.count();
        if ch == 0 {
            return Err(fail("a packet with no channels".into()));
        }
        channels = ch;
        let b = match &mut buf {
            Some(b) if b.capacity() >= decoded.capacity() * ch => b,
            _ => buf.insert(SampleBuffer::<f32>::new(decoded.capacity() as u64, spec)),
        };
        b.copy_interleaved_ref(decoded);
        mix_into(&mut mono, b.samples(), ch, rate).map_err(fail)?;
        if mono.len() as u64 > max_frames {
            return Err(fail(format!("longer than {max_seconds} s (the limit; the whole recording is resampled at once); split it or raise the limit")));
        }
    }
    // symphonia 0.5's Ogg reader does not trim the last packet to the stream's end (its final
    // granule position, which it reports as the frame count; libvorbis trims there).
    if let (b"OggS", Some(n)) = (&magic, params.n_frames) {
        mono.truncate(n.min(mono.len() as u64) as usize);
    }
    if let Some(n) = exact.filter(|n| (mono.len() as u64) < *n) {
        return Err(fail(format!(
            "truncated: the header announces {n} frames, the file holds {} ({:.3} of {:.3} s)",
            mono.len(),
            mono.len() as f64 / f64::from(rate),
            n as f64 / f64::from(rate)
        )));
    }
    if mono.is_empty() {
        return Err(fail("no audio samples".into()));
    }
    Ok(Recording { path: path.to_path_buf(), sample_rate: rate, channels, samples: mono })
}

/// Runs a call into symphonia, turning a panic inside it into an error: symphonia 0.5 panics on
/// some malformed headers (a WAV whose fmt chunk gives a sample rate of 0, found by the
/// `audio_file` fuzzer; docs/FUZZING.md), which must be this file's error, not the run's end.
fn unpanicked<T>(call: impl FnOnce() -> T) -> std::result::Result<T, String> {
    std::panic::catch_unwind(std::panic::AssertUnwindSafe(call)).map_err(|panic| {
        let what = panic.downcast_ref::<&str>().map(|s| s.to_string()).or_else(|| panic.downcast_ref::<String>().cloned()).unwrap_or_default();
        format!("symphonia failed on it ({what}): a malformed header or stream")
    })
}

/// A WAV file (from byte `start`, where the stream was found) through [`crate::audio::wav`], mixed
/// to mono.
fn from_plain_wav(path: &Path, start: u64, max_seconds: f64) -> std::result::Result<Recording, String> {
    let bytes = std::fs::read(path).map_err(|e| format!("cannot read: {e}"))?;
    let wav = crate::audio::wav::decode(bytes.get(start as usize..).unwrap_or_default(), max_seconds)?;
    let mut mono = Vec::with_capacity(wav.samples.len() / wav.channels);
    mix_into(&mut mono, &wav.samples, wav.channels, wav.sample_rate)?;
    if mono.is_empty() {
        return Err("no audio samples".into());
    }
    Ok(Recording { path: path.to_path_buf(), sample_rate: wav.sample_rate, channels: wav.channels, samples: mono })
}

/// Appends the frames of `interleaved` (`ch` channels) to `mono` as channel means, refusing
/// NaN and infinite samples with where they are.
fn mix_into(mono: &mut Vec<f32>, interleaved: &[f32], ch: usize, rate: u32) -> std::result::Result<(), String> {
    for frame in interleaved.chunks_exact(ch) {
        if let Some(c) = frame.iter().position(|v| !v.is_finite()) {
            return Err(format!(
                "sample {} of channel {c} (at {:.3} s) is {}; audio samples must be finite numbers",
                mono.len(),
                mono.len() as f64 / f64::from(rate),
                frame[c]
            ));
        }
        // Summed, then divided: numpy's mean over the channel axis.
        mono.push(if ch == 1 { frame[0] } else { frame.iter().sum::<f32>() / ch as f32 });
    }
    Ok(())
}

/// The duration a file's header announces, without decoding it (`None` where it does not say).
pub fn probe_seconds(path: &Path) -> Option<f64> {
    let file = std::fs::File::open(path).ok()?;
    let len = file.metadata().ok()?.len();
    let start = crate::audio::guard::check(&file, len).ok()?;
    let mss = MediaSourceStream::new(Box::new(crate::audio::guard::AudioWindow::new(file, start, len).ok()?), Default::default());
    let mut hint = Hint::new();
    if let Some(ext) = path.extension().and_then(|e| e.to_str()) {
        hint.with_extension(ext);
    }
    let formats = FormatOptions { enable_gapless: true, ..FormatOptions::default() };
    let probed = unpanicked(|| symphonia::default::get_probe().format(&hint, mss, &formats, &MetadataOptions::default())).ok()?.ok()?;
    let params = &probed.format.tracks().iter().find(|t| t.codec_params.codec != CODEC_TYPE_NULL)?.codec_params;
    Some(params.n_frames? as f64 / f64::from(params.sample_rate.filter(|r| *r > 0)?))
}

/// The audio files named: files as given, folders searched recursively for the
/// [`EXTENSIONS`] (sorted by path). A path that does not exist is an error.
pub fn find_audio(paths: &[PathBuf]) -> Result<Vec<PathBuf>> {
    crate::files::find_files(paths, EXTENSIONS)
}
