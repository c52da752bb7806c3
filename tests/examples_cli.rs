//! The examples as a user runs them (the binaries `cargo test` builds beside this test): the
//! README's main-job command end to end, and clear, panic-free failures on bad input.

use arrow_array::RecordBatch;
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn example(name: &str) -> PathBuf {
    // target/<profile>/deps/<this test> → target/<profile>/examples/<name>
    let exe = std::env::current_exe().unwrap();
    let path = exe.parent().unwrap().parent().unwrap().join("examples").join(name);
    assert!(path.exists(), "{} not built (cargo test builds the examples)", path.display());
    path
}

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

fn run(name: &str, args: &[&str]) -> (Output, String, String) {
    let out = Command::new(example(name)).args(args).current_dir(root()).output().unwrap();
    let (stdout, stderr) = (String::from_utf8_lossy(&out.stdout).to_string(), String::from_utf8_lossy(&out.stderr).to_string());
    assert!(!stderr.contains("panicked"), "{name} {args:?} panicked:\n{stderr}");
    (out, stdout, stderr)
}

fn temp(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("haidef-cli-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    d
}

#[test]
fn the_readme_main_job_writes_what_it_says() {
    let out_dir = temp("main");
    let o = out_dir.to_str().unwrap();
    // The README's first command, with the output directory moved to a temporary one.
    let (out, stdout, stderr) = run("slide_heatmap", &["fixtures/slides/ihc-sparse", "--out", o, "--mpp", "0.5", "--min-tissue", "0.25"]);
    assert!(out.status.success(), "{stdout}\n{stderr}");
    assert!(stderr.contains("UNTRAINED") || stdout.contains("UNTRAINED"), "the untrained warning is loud");
    // "patches: N embedded, M skipped …": the Parquet file holds N rows.
    let line = stdout.lines().find(|l| l.starts_with("patches:")).unwrap_or_else(|| panic!("no summary line:\n{stdout}"));
    let embedded: usize = line.split_whitespace().nth(1).unwrap().parse().unwrap();
    let file = std::fs::File::open(out_dir.join("embeddings.parquet")).unwrap();
    let batches: Vec<RecordBatch> = ParquetRecordBatchReaderBuilder::try_new(file).unwrap().build().unwrap().map(Result::unwrap).collect();
    assert_eq!(batches.iter().map(RecordBatch::num_rows).sum::<usize>(), embedded);
    assert!(embedded > 0);
    for png in ["heatmap.png", "clusters.png"] {
        assert!(std::fs::metadata(out_dir.join(png)).unwrap().len() > 1000, "{png}");
    }
    assert!(stdout.contains("embeddings/hour"), "{stdout}");
    std::fs::remove_dir_all(&out_dir).unwrap();
}

#[test]
fn bad_input_fails_clearly_and_writes_nothing() {
    let out_dir = temp("bad");
    let o = out_dir.to_str().unwrap();
    let unwritable = "/proc/haidef-cannot-write-here";
    for (args, expected) in [
        (vec!["fixtures/slides/ihc-sparse", "--out", o, "--level", "9"], "level 9 does not exist"),
        (vec!["fixtures/slides/ihc-sparse", "--out", o, "--mpp", "0.5", "--k", "500"], "lower --k"),
        (vec!["fixtures/slides/no-such-slide", "--out", o], "no-such-slide"),
        (vec!["fixtures/slides/ihc-sparse", "--out", unwritable], "cannot write"),
        (vec!["http://bob:hunter2@127.0.0.1:9/dicom-web/studies/1.2/series/3.4", "--out", o], "--basic-auth"),
        (vec!["fixtures/slides/ihc-sparse"], "--out"),
    ] {
        let (out, stdout, stderr) = run("slide_heatmap", &args);
        assert!(!out.status.success(), "{args:?} succeeded:\n{stdout}");
        assert!(stderr.contains("error") && stderr.contains(expected), "{args:?}: expected {expected:?} in:\n{stderr}");
        assert!(!stderr.contains("hunter2") && !stdout.contains("hunter2"), "credentials leaked");
        let left: Vec<_> = std::fs::read_dir(&out_dir).map(|d| d.map(|e| e.unwrap().file_name()).collect()).unwrap_or_default();
        assert!(left.is_empty(), "{args:?} left {left:?}");
    }
}

#[test]
fn slide_info_describes_the_fixture_as_pydicom_does() {
    // Sizes and frame counts per level, against fixtures/slides/summary.json (written by
    // pydicom from the same files; see fixtures/make_fixtures.sh).
    let (out, stdout, stderr) = run("slide_info", &["fixtures/slides/ihc-full", "--json"]);
    assert!(out.status.success(), "{stderr}");
    let ours: serde_json::Value = serde_json::from_str(&stdout).unwrap();
    let summary: serde_json::Value = serde_json::from_slice(&std::fs::read(root().join("fixtures/slides/summary.json")).unwrap()).unwrap();
    let reference = summary["ihc-full"].as_array().unwrap();
    let levels = ours["levels"].as_array().unwrap();
    let volume: Vec<&serde_json::Value> = reference.iter().filter(|f| f["image_type"].as_str().unwrap().contains("VOLUME")).collect();
    assert_eq!(levels.len(), volume.len());
    for level in levels {
        let file = Path::new(level["file"].as_str().unwrap()).file_name().unwrap().to_str().unwrap().to_string();
        let r = volume.iter().find(|f| f["file"] == file.as_str()).unwrap_or_else(|| panic!("{file} not in summary.json"));
        assert_eq!((&level["width"], &level["height"]), (&r["total_pixel_matrix"][0], &r["total_pixel_matrix"][1]), "{file}");
        assert_eq!(&level["frames"], &r["number_of_frames"], "{file}");
        assert_eq!(&level["transfer_syntax"], &r["transfer_syntax"], "{file}");
        // µm/px: the mean of the two spacings implied by the imaged volume.
        let mean = (r["true_spacing_um"][0].as_f64().unwrap() + r["true_spacing_um"][1].as_f64().unwrap()) / 2.0;
        assert!((level["mpp"].as_f64().unwrap() - mean).abs() < 1e-3, "{file}: {} vs {mean}", level["mpp"]);
    }
}
