#![no_main]
//! cargo-fuzz target `dicom_folder`: see `fuzz/harness/wsi.rs`.

#[path = "../harness/wsi.rs"]
mod harness;

libfuzzer_sys::fuzz_target!(|data: &[u8]| harness::dicom_folder(data));
