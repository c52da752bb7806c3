#![no_main]
//! cargo-fuzz target `image_file`: see `fuzz/harness/images.rs`.

#[path = "../harness/images.rs"]
mod harness;

libfuzzer_sys::fuzz_target!(|data: &[u8]| harness::image_file(data));
