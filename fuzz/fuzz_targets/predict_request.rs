#![no_main]
//! cargo-fuzz target `predict_request`: see `fuzz/harness/serve.rs`.

#[path = "../harness/serve.rs"]
mod harness;

libfuzzer_sys::fuzz_target!(|data: &[u8]| harness::predict_request(data));
