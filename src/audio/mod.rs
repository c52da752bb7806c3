//! Audio recordings: reading (symphonia, a plain WAV reader, and guards against hostile
//! headers), resampling, windows, the picture, and the audio job ([`AudioJob`]).

mod guard;
mod job;
#[cfg(feature = "heatmaps")]
mod picture;
mod read;
mod resample;
mod wav;
mod windows;

pub use job::{Audio, AudioJob, AudioJobSummary, AudioReport};
pub use read::{find_audio, probe_seconds, read_audio, Recording, DEFAULT_MAX_SECONDS};
pub use resample::{resample, resampled_len};
pub use wav::{decode as decode_wav, Wav};
pub use windows::{AudioOptions, Clip, WindowKey};
