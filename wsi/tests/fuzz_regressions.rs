//! Every input the fuzzers found a fault with (kept under `fixtures/fuzz-regressions/<target>/`)
//! replayed through the same code as its cargo-fuzz target (`fuzz/harness/wsi.rs`), on stable
//! Rust: each must now be handled (an error is fine; a panic fails the test). docs/FUZZING.md
//! says how the inputs were found and what was fixed.

#[path = "../../fuzz/harness/wsi.rs"]
mod harness;

use std::path::PathBuf;

fn inputs(target: &str) -> Vec<PathBuf> {
    let dir = harness::fixtures().join("fuzz-regressions").join(target);
    let mut v: Vec<PathBuf> =
        std::fs::read_dir(&dir).into_iter().flatten().flatten().map(|e| e.path()).filter(|p| p.is_file() && !p.ends_with("README.md")).collect();
    v.sort();
    v
}

#[test]
fn every_kept_fuzz_input_is_handled() {
    type Target = (&'static str, fn(&[u8]));
    let targets: [Target; 5] = [
        ("dicom_file", harness::dicom_file),
        ("dicom_folder", harness::dicom_folder),
        ("metadata_json", harness::metadata_json),
        ("multipart", harness::multipart),
        ("frame", harness::frame),
    ];
    for (target, run) in targets {
        for file in inputs(target) {
            let data = std::fs::read(&file).unwrap();
            let start = std::time::Instant::now();
            run(&data);
            let took = start.elapsed();
            // The fuzzers' hang limit is 1 s; a replay may take longer on a busy machine.
            assert!(took.as_secs_f64() < 10.0, "{}: {took:?}", file.display());
        }
    }
}
