//! Cohorts as users run them: `embed_cohort` under a real Slurm (job arrays, `scancel`,
//! resubmission of one index) and by hand (SIGKILL, a damaged output, a changed shard count),
//! the dataset read back as one table by pyarrow and DuckDB (`tests/read_cohort.py`), patch
//! positions checked against the grid from each slide's DICOM header (dicom-rs, not our reader).

mod common;
#[path = "../wsi/tests/orthanc/mod.rs"]
mod orthanc;
#[path = "support/slurm.rs"]
mod slurm;
#[path = "../benches/support/tiled_slide.rs"]
mod tiled_slide;

use dicom_dictionary_std::tags;
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use serde_json::Value;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Duration, Instant};

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

fn fixture(p: &str) -> PathBuf {
    root().join("fixtures").join(p)
}

fn example(name: &str) -> PathBuf {
    // target/<profile>/deps/<this test> → target/<profile>/examples/<name>
    let exe = std::env::current_exe().unwrap();
    let path = exe.parent().unwrap().parent().unwrap().join("examples").join(name);
    assert!(path.exists(), "{} not built (cargo test builds the examples)", path.display());
    path
}

fn temp(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("haidef-cohort-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

/// The settings every run here uses: level 0, every patch, 2 clusters, small batches (so a
/// cancel lands between batches soon).
const SETTINGS: [&str; 7] = ["--level", "0", "--all-patches", "--k", "2", "--batch", "4"];

/// Every 224-px patch position of a slide's level 0, from its DICOM header.
fn grid(level0: &Path) -> Vec<[u64; 2]> {
    let obj = dicom_object::open_file(level0).unwrap();
    let get = |tag| obj.element(tag).unwrap().to_int::<u64>().unwrap();
    let (w, h) = (get(tags::TOTAL_PIXEL_MATRIX_COLUMNS), get(tags::TOTAL_PIXEL_MATRIX_ROWS));
    let mut v: Vec<[u64; 2]> = (0..h / 224).flat_map(|j| (0..w / 224).map(move |i| [i * 224, j * 224])).collect();
    v.sort();
    v
}

fn uid(level0: &Path, tag: dicom_core::Tag) -> String {
    dicom_object::open_file(level0).unwrap().element(tag).unwrap().to_str().unwrap().trim_end_matches('\0').to_string()
}

/// The dataset as pyarrow and DuckDB read it.
fn read_cohort(dir: &Path) -> Value {
    let out = Command::new("python3").arg(root().join("tests/read_cohort.py")).arg(dir).output().unwrap();
    assert!(out.status.success(), "read_cohort.py: {}", String::from_utf8_lossy(&out.stderr));
    serde_json::from_slice(&out.stdout).unwrap()
}

/// (x, y, embedding) of every row of one Parquet file.
fn rows(file: &Path) -> Vec<(u32, u32, Vec<f32>)> {
    let mut out = common::read_embeddings_file(file);
    out.sort_by_key(|r| (r.1, r.0));
    out
}

fn part(dir: &Path, id: &str) -> PathBuf {
    dir.join("embeddings").join(format!("slide_id={id}")).join("part-0.parquet")
}

fn run(name: &str, args: &[&str]) -> (Output, String) {
    let out = Command::new(example(name)).args(args).output().unwrap();
    let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(!text.contains("panicked"), "{name} {args:?} panicked:\n{text}");
    (out, text)
}

/// Files under `dir` whose names end in `.partial` (outputs being written, never finished).
fn partial_files(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        if e.path().is_dir() {
            out.extend(partial_files(&e.path()));
        } else if e.file_name().to_string_lossy().ends_with(".partial") {
            out.push(e.path());
        }
    }
    out
}

/// Waits until a staging folder of `id` holds a Parquet file being written (in the slide job's
/// own staging folder inside it), i.e. `id` is being embedded right now.
fn wait_mid_slide(dir: &Path, id: &str, timeout: Duration) {
    let start = Instant::now();
    loop {
        let busy = std::fs::read_dir(dir.join("staging")).into_iter().flatten().flatten().any(|e| {
            e.file_name().to_string_lossy().starts_with(&format!("{id}@")) && partial_files(&e.path()).iter().any(|p| p.ends_with("embeddings.parquet.partial"))
        });
        if busy {
            return;
        }
        assert!(start.elapsed() < timeout, "{id} was not started within {timeout:?}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn a_slurm_array_embeds_a_cohort_and_a_cancelled_shard_resubmitted_alone_completes_it() {
    let Some(slurm) = slurm::Slurm::start() else { return };
    let Some(server) = orthanc::Orthanc::start(orthanc::Setup::default()) else { return };
    let work = temp("slurm");
    let raw = fixture("slides/ihc-raw");
    server.stow(&raw);
    let url = server.series_url(&uid(&raw.join("level-0.dcm"), tags::STUDY_INSTANCE_UID), &uid(&raw.join("level-0.dcm"), tags::SERIES_INSTANCE_UID));
    let big = tiled_slide::build(&root().join("fixtures"), &work.join("big"), 10, 10);
    let slides = |name: &str| fixture(&format!("slides/{name}")).display().to_string();
    // Row r goes to shard r mod 3. Shard 1 finishes j2k and prophoto, then is cancelled in `big`
    // (121 patches); `corrupt` (frame 2 of its only level is not JPEG) comes after it.
    let manifest = [
        ("path", "slide_id", "label"),
        (&slides("ihc-full"), "full", "tumour"),
        (&slides("ihc-j2k"), "", "normal"),
        (&slides("ihc-raw"), "raw", ""),
        (&slides("ihc-raw-implicit"), "raw-implicit", ""),
        (&slides("ihc-raw-prophoto"), "raw-prophoto", ""),
        (&slides("ihc-raw-tiled-full"), "raw-tiled-full", ""),
        (&slides("ihc-sparse"), "sparse", "tumour"),
        ("big", "big", ""),
        (&url, "orthanc-raw", ""),
        ("no/such/slide", "missing", ""),
        (&fixture("bad/corrupt_jpeg.dcm").display().to_string(), "corrupt", ""),
    ];
    let csv: String = manifest.iter().map(|(p, i, l)| format!("{p},{i},{l}\n")).collect();
    let manifest_file = work.join("manifest.csv");
    std::fs::write(&manifest_file, csv).unwrap();
    let out = work.join("out");
    let j2k_id = uid(&fixture("slides/ihc-j2k/level-0.dcm"), tags::SERIES_INSTANCE_UID);

    let bin = format!("HAIDEF_BIN={}", example("embed_cohort").display());
    let sbatch = |array: &str| {
        let mut args = vec![
            format!("--array={array}"),
            "--cpus-per-task=1".into(),
            "--mem=3000".into(),
            format!("--chdir={}", work.display()),
            format!("--output={}/log-%A_%a.txt", work.display()),
            format!("--export=ALL,{bin}"),
            root().join("deploy/slurm/embed_cohort.sbatch").display().to_string(),
            manifest_file.display().to_string(),
            out.display().to_string(),
            "3".into(),
        ];
        args.extend(SETTINGS.iter().map(|s| s.to_string()));
        slurm.sbatch(&args.iter().map(String::as_str).collect::<Vec<_>>())
    };
    let log = |job: &str, task: usize| std::fs::read_to_string(work.join(format!("log-{job}_{task}.txt"))).unwrap_or_default();

    // The first submission; shard 1 is cancelled in the middle of `big`.
    let first = sbatch("0-2");
    wait_mid_slide(&out, "big", Duration::from_secs(240));
    std::thread::sleep(Duration::from_secs(2));
    slurm.scancel(&format!("{first}_1"));
    slurm.wait(&first, Duration::from_secs(300));
    assert_eq!(slurm.state(&format!("{first}_1")).0, "CANCELLED");
    let cancelled = log(&first, 1);
    assert!(cancelled.contains("interrupted: rerun this shard"), "shard 1 stopped cleanly on SIGTERM:\n{cancelled}");
    assert!(!part(&out, "big").exists() && !out.join("done/big.json").exists(), "no output of the slide it was cancelled in");
    assert_eq!(std::fs::read_dir(out.join("staging")).unwrap().count(), 0, "no staging left");
    for id in [j2k_id.as_str(), "raw-prophoto"] {
        assert!(part(&out, id).exists(), "shard 1 kept {id}, finished before the cancel");
    }
    // Exit status 1: shard 0 holds the missing slide; shard 2 is complete.
    assert_eq!(slurm.state(&format!("{first}_0")), ("FAILED".into(), "1:0".into()), "{}", log(&first, 0));
    assert_eq!(slurm.state(&format!("{first}_2")), ("COMPLETED".into(), "0:0".into()), "{}", log(&first, 2));

    // Resubmitting index 1 alone redoes shard 1 only: it skips what it finished.
    let before: BTreeMap<String, std::time::SystemTime> = ["full", "raw", "sparse", "orthanc-raw", "raw-prophoto"]
        .iter()
        .map(|id| (id.to_string(), std::fs::metadata(part(&out, id)).unwrap().modified().unwrap()))
        .collect();
    let second = sbatch("1");
    slurm.wait(&second, Duration::from_secs(300));
    let resumed = log(&second, 1);
    assert_eq!(slurm.state(&format!("{second}_1")).1, "1:0", "the corrupt slide fails:\n{resumed}");
    assert!(resumed.contains("raw-prophoto already done (verified), skipped") && resumed.contains(&format!("{j2k_id} already done")), "{resumed}");
    assert!(resumed.contains("shard 1 of 3") && !resumed.contains("slide_id=full"), "{resumed}");
    for (id, t) in &before {
        assert_eq!(std::fs::metadata(part(&out, id)).unwrap().modified().unwrap(), *t, "{id} was not rewritten");
    }

    // The dataset: one table, exactly one row per patch of every slide, in pyarrow and DuckDB.
    let table = read_cohort(&out);
    let expect: BTreeMap<String, Vec<[u64; 2]>> = [
        ("full", fixture("slides/ihc-full/level-0.dcm")),
        (j2k_id.as_str(), fixture("slides/ihc-j2k/level-0.dcm")),
        ("raw", fixture("slides/ihc-raw/level-0.dcm")),
        ("raw-implicit", fixture("slides/ihc-raw-implicit/level-0.dcm")),
        ("raw-prophoto", fixture("slides/ihc-raw-prophoto/level-0.dcm")),
        ("raw-tiled-full", fixture("slides/ihc-raw-tiled-full/level-0.dcm")),
        ("sparse", fixture("slides/ihc-sparse/level-0.dcm")),
        ("big", big.join("level-0.dcm")),
        ("orthanc-raw", raw.join("level-0.dcm")),
    ]
    .iter()
    .map(|(id, f)| (id.to_string(), grid(f)))
    .collect();
    let positions: BTreeMap<String, Vec<[u64; 2]>> = serde_json::from_value(table["positions"].clone()).unwrap();
    assert_eq!(positions, expect, "one row per patch of every slide");
    assert_eq!(table["rows"].as_u64().unwrap() as usize, expect.values().map(Vec::len).sum::<usize>());
    assert_eq!(table["duplicates"], 0);
    assert_eq!(table["mismatched"], serde_json::json!([]), "each file's slide_id is its folder's");
    assert_eq!(table["duckdb_per_slide"], table["per_slide"], "DuckDB reads the same table");
    assert_eq!(expect["big"].len(), 121);
    // The slide over DICOMweb gives the rows of its files.
    let (web, file) = (rows(&part(&out, "orthanc-raw")), rows(&part(&out, "raw")));
    assert_eq!(web.len(), file.len());
    for (a, b) in web.iter().zip(&file) {
        let diff = a.2.iter().zip(&b.2).map(|(p, q)| (p - q).abs()).fold(0.0f32, f32::max);
        assert!((a.0, a.1) == (b.0, b.1) && diff < 1e-5, "({}, {}): {diff}", a.0, a.1);
    }
    for id in expect.keys() {
        for png in ["heatmap.png", "clusters.png"] {
            assert!(out.join("heatmaps").join(id).join(png).is_file(), "{id}/{png}");
        }
    }

    // The failures are recorded, once each; cohort_status says so and exits 1.
    let (status, text) = run("cohort_status", &[out.to_str().unwrap(), manifest_file.to_str().unwrap()]);
    assert_eq!(status.status.code(), Some(1), "{text}");
    assert!(text.contains("11 slides: 9 done, 2 failed, 0 missing"), "{text}");
    let failed: Vec<&str> = text.lines().filter(|l| l.contains(" failed ")).collect();
    assert!(failed.iter().any(|l| l.contains("missing") && l.contains("no/such/slide") && l.contains("attempts: 1")), "{text}");
    assert!(failed.iter().any(|l| l.contains("corrupt") && l.contains("frame 2") && l.contains("attempts: 1")), "{text}");
    assert!(text.contains("embeddings/hour for the cohort"), "{text}");
    assert_eq!(partial_files(&out), Vec::<PathBuf>::new());
    assert_eq!(std::fs::read_dir(out.join("done")).unwrap().count(), 9, "one record per finished slide");
}

#[test]
fn a_killed_run_leaves_no_output_a_damaged_file_is_redone_and_settings_are_fixed() {
    let work = temp("local");
    let big = tiled_slide::build(&root().join("fixtures"), &work.join("big"), 6, 6);
    let raw = fixture("slides/ihc-raw").display().to_string();
    let implicit = fixture("slides/ihc-raw-implicit").display().to_string();
    // raw and implicit carry the same SeriesInstanceUID and no slide_id: the second is refused.
    std::fs::write(work.join("manifest.csv"), format!("path,label\n{raw},a\nbig,b\n{implicit},c\n")).unwrap();
    let (manifest, out) = (work.join("manifest.csv"), work.join("out"));
    let (m, o) = (manifest.to_str().unwrap(), out.to_str().unwrap());
    let mut args = vec![m, "--out", o, "--shards", "1"];
    args.extend(SETTINGS);
    let raw_id = uid(&fixture("slides/ihc-raw/level-0.dcm"), tags::SERIES_INSTANCE_UID);
    let big_id = uid(&big.join("level-0.dcm"), tags::SERIES_INSTANCE_UID);

    // SIGKILL in the middle of `big`: nothing of it is in the dataset; its staging folder stays.
    let mut child = Command::new(example("embed_cohort")).args(&args).stdout(std::process::Stdio::null()).stderr(std::process::Stdio::null()).spawn().unwrap();
    wait_mid_slide(&out, &big_id, Duration::from_secs(120));
    child.kill().unwrap();
    child.wait().unwrap();
    assert!(part(&out, &raw_id).exists() && !part(&out, &big_id).exists());
    let (status, text) = run("cohort_status", &[o, m]);
    assert_eq!(status.status.code(), Some(1));
    assert!(text.contains("3 slides: 1 done, 0 failed, 2 missing") && text.contains("in progress or interrupted (staging/)"), "{text}");

    // The rerun skips raw, clears the staging, embeds big, refuses the duplicate series.
    let (status, text) = run("embed_cohort", &args);
    assert_eq!(status.status.code(), Some(1), "{text}");
    assert!(text.contains(&format!("{raw_id} already done (verified), skipped")), "{text}");
    assert!(text.contains(&format!("SeriesInstanceUID {raw_id} is already the id of")) && text.contains("give this row its own slide_id"), "{text}");
    assert_eq!(std::fs::read_dir(out.join("staging")).unwrap().count(), 0);
    assert_eq!(partial_files(&out), Vec::<PathBuf>::new());
    let table = read_cohort(&out);
    assert_eq!(table["per_slide"][&big_id], 36);
    assert_eq!(table["duplicates"], 0);
    // Labels travel in each file's metadata.
    let f = std::fs::File::open(part(&out, &big_id)).unwrap();
    let meta = ParquetRecordBatchReaderBuilder::try_new(f).unwrap().metadata().file_metadata().key_value_metadata().cloned().unwrap();
    assert!(meta.iter().any(|kv| kv.key == "label" && kv.value.as_deref() == Some("b")), "{meta:?}");

    // A file changed behind the cohort's back (same size, one byte flipped) is found and redone.
    let file = part(&out, &raw_id);
    let (good, good_rows) = (std::fs::read(&file).unwrap(), rows(&file));
    let mut bad = good.clone();
    bad[good.len() / 2] ^= 0x55;
    std::fs::write(&file, &bad).unwrap();
    let (_, text) = run("cohort_status", &[o, m, "--verify"]);
    assert!(text.contains("damaged") && text.contains("SHA-256"), "{text}");
    let (_, text) = run("embed_cohort", &args);
    assert!(text.contains("redoing") && text.contains("SHA-256 differs"), "{text}");
    assert!(rows(&file) == good_rows, "the redone file has the original rows (the pipeline is deterministic)");

    // The shard count and the settings are fixed by the first run.
    let mut other = args.clone();
    other[4] = "2";
    let (status, text) = run("embed_cohort", &[&other[..], &["--shard", "0"]].concat());
    assert_eq!(status.status.code(), Some(2));
    assert!(text.contains("started with --shards 1; rerun with --shards 1"), "{text}");
    let mut other = args.clone();
    other[9] = "3";
    let (status, text) = run("embed_cohort", &other);
    assert_eq!(status.status.code(), Some(2));
    assert!(text.contains("k: 2 before, 3 now"), "{text}");
    // Without --shard and outside a scheduler, two shards cannot guess which one this is.
    let (status, text) = run("embed_cohort", &[m, "--out", work.join("other").to_str().unwrap(), "--shards", "2"]);
    assert_eq!(status.status.code(), Some(2));
    assert!(text.contains("pass --shard I"), "{text}");
}
