#![no_main]
//! cargo-fuzz target `audio_file`: see `fuzz/harness/audio.rs`.

#[path = "../harness/audio.rs"]
mod harness;

libfuzzer_sys::fuzz_target!(|data: &[u8]| harness::audio_file(data));
