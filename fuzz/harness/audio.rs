//! What the `audio_file` fuzz target does with one input (the facade's audio path, what
//! `embed_audio` and the HeAR job read); shared with `tests/audio.rs`, which replays the kept
//! inputs on stable. The first byte picks the file's extension (symphonia's probe is helped by
//! it; users' files carry one).
#![allow(dead_code)]

use haidef_wsi::{probe_seconds, read_audio, DEFAULT_MAX_SECONDS};
use haidef_wsi::{resample, resampled_len};

/// HeAR's sample rate: every recording is brought to it before windowing.
const MODEL_RATE: u32 = 16_000;

/// An audio file as bytes: the plain WAV reader on the bytes themselves, the header's duration
/// (what the audio job shows before decoding), then the file read as the audio job reads one (symphonia or the WAV reader, mixed to mono, under the default
/// length limit) and resampled to 16 kHz.
pub fn audio_file(data: &[u8]) {
    symphonia_panics_are_errors();
    let Some((&pick, bytes)) = data.split_first() else { return };
    let _ = haidef_wsi::decode_wav(bytes, DEFAULT_MAX_SECONDS);
    let ext = ["wav", "flac", "ogg", "mp3"][pick as usize % 4];
    let path = std::env::temp_dir().join(format!("haidef-fuzz-audio-{}.{ext}", std::process::id()));
    if std::fs::write(&path, bytes).is_err() {
        return;
    }
    let _ = probe_seconds(&path);
    if let Ok(rec) = read_audio(&path, DEFAULT_MAX_SECONDS) {
        let n = resampled_len(rec.samples.len(), rec.sample_rate, MODEL_RATE);
        if n > 0 && rec.sample_rate != MODEL_RATE {
            let _ = resample(&rec.samples, n);
        }
    }
}

/// libFuzzer's panic hook aborts on every panic, even one caught. `read_audio` turns a panic
/// inside symphonia into the file's error (a guard on our side); under the fuzzer, such a panic
/// is let through to that, while any other (ours) still aborts as a finding.
fn symphonia_panics_are_errors() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        let fuzzer_hook = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            if !info.location().is_some_and(|l| l.file().contains("/symphonia-")) {
                fuzzer_hook(info);
            }
        }));
    });
}
