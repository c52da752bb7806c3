//! The examples as a user runs them (the binaries `cargo test` builds beside this test): the
//! README's main-job command end to end, and clear, panic-free failures on bad input.

mod common;

use arrow_array::RecordBatch;
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use common::{example, root};

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

/// A pathology preset by name through both embedding examples (Phikon: the smallest; the
/// presets' exactness is encoders/tests/parity.rs): rows of its width, metadata naming the model
/// and its preprocessing.
#[test]
fn slide_heatmap_and_embed_images_take_a_pathology_preset_by_name() {
    use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
    let dir = temp("preset");
    let (slide_out, images_out) = (dir.join("slide"), dir.join("images.parquet"));
    let (out, stdout, stderr) = run(
        "slide_heatmap",
        &["fixtures/slides/ihc-raw", "--out", slide_out.to_str().unwrap(), "--model", "phikon", "--level", "0", "--all-patches", "--k", "2"],
    );
    assert!(out.status.success(), "{stdout}\n{stderr}");
    assert!(stdout.contains("model phikon (UNTRAINED)"), "{stdout}");
    let (out, stdout, stderr) = run("embed_images", &["fixtures/images/patches/patch0.png", "--model", "phikon", "--out", images_out.to_str().unwrap()]);
    assert!(out.status.success(), "{stdout}\n{stderr}");
    for file in [slide_out.join("embeddings.parquet"), images_out] {
        let reader = ParquetRecordBatchReaderBuilder::try_new(std::fs::File::open(&file).unwrap()).unwrap();
        let meta: std::collections::HashMap<String, String> =
            reader.metadata().file_metadata().key_value_metadata().unwrap().iter().map(|kv| (kv.key.clone(), kv.value.clone().unwrap_or_default())).collect();
        assert_eq!(meta["model_id"], "owkin/phikon", "{file:?}");
        assert!(meta["input_scaling"].contains("0.485") && meta["input_scaling"].contains("0.229"), "{file:?}: {}", meta["input_scaling"]);
        let batch = reader.build().unwrap().next().unwrap().unwrap();
        let emb = batch.column_by_name("embedding").unwrap();
        assert!(matches!(emb.data_type(), arrow_schema::DataType::FixedSizeList(_, 768)), "{file:?}: {:?}", emb.data_type());
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

/// `embed_text` and `slide_heatmap --prompt` with a MedSigLIP checkpoint folder as transformers
/// writes one (the reference model: real widths, 2 + 2 layers, seeded weights, the fixture's
/// sentencepiece vocabulary): the text embeddings are transformers' (fixtures/medsiglip), and
/// the slide run writes a score column and picture per prompt.
#[test]
fn medsiglip_folder_embeds_texts_and_scores_a_slide() {
    use arrow_array::{Array, FixedSizeListArray, Float32Array, StringArray};
    use haidef_wsi::encoders::{siglip::seeded_tensors, SiglipConfig};
    let r: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(root().join("fixtures/medsiglip/reference.json")).unwrap()).unwrap();
    let m = &r["model"];
    let dir = temp("medsiglip");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("config.json"), serde_json::to_string(&m["config"]).unwrap()).unwrap();
    let cfg = SiglipConfig::medsiglip_448().with_depth(2, 2);
    let tensors = seeded_tensors(&cfg, r["generator"]["seed"].as_u64().unwrap()).unwrap();
    haidef_wsi::encoders::candle::safetensors::save(&tensors, dir.join("model.safetensors")).unwrap();
    std::fs::copy(root().join("fixtures/medsiglip/spiece.model"), dir.join("spiece.model")).unwrap();
    let weights = dir.to_str().unwrap();

    let out = dir.join("texts.parquet");
    let (o, stdout, stderr) = run("embed_text", &["tumor", "normal tissue", "--model", "medsiglip", "--weights", weights, "--out", out.to_str().unwrap()]);
    assert!(o.status.success(), "{stdout}\n{stderr}");
    let file = std::fs::File::open(&out).unwrap();
    let batches: Vec<RecordBatch> = ParquetRecordBatchReaderBuilder::try_new(file).unwrap().build().unwrap().map(Result::unwrap).collect();
    let b = &batches[0];
    let texts = b.column_by_name("text").unwrap().as_any().downcast_ref::<StringArray>().unwrap();
    let emb = b.column_by_name("embedding").unwrap().as_any().downcast_ref::<FixedSizeListArray>().unwrap();
    for (i, case) in ["plain", "plain_two_words"].iter().enumerate() {
        let got = emb.value(i);
        let got = got.as_any().downcast_ref::<Float32Array>().unwrap().values().to_vec();
        let want: Vec<f32> = m["text_features"][case].as_array().unwrap().iter().map(|v| v.as_f64().unwrap() as f32).collect();
        let num: f64 = got.iter().zip(&want).map(|(a, b)| f64::from(a - b).powi(2)).sum();
        let den: f64 = want.iter().map(|b| f64::from(*b).powi(2)).sum();
        assert!((num / den).sqrt() <= 1e-4, "{}: relative error {:.2e}", texts.value(i), (num / den).sqrt());
    }

    let slide_out = dir.join("slide");
    let so = slide_out.to_str().unwrap();
    let (o, stdout, stderr) = run(
        "slide_heatmap",
        &[
            "fixtures/slides/ihc-sparse",
            "--out",
            so,
            "--mpp",
            "1",
            "--all-patches",
            "--k",
            "2",
            "--model",
            "medsiglip",
            "--weights",
            weights,
            "--prompt",
            "tumor",
            "--prompt",
            "normal tissue",
        ],
    );
    assert!(o.status.success(), "{stdout}\n{stderr}");
    assert!(slide_out.join("score-1-tumor.png").exists() && slide_out.join("score-2-normal-tissue.png").exists(), "{stdout}");
    let file = std::fs::File::open(slide_out.join("embeddings.parquet")).unwrap();
    let schema = ParquetRecordBatchReaderBuilder::try_new(file).unwrap().schema().clone();
    assert!(schema.field_with_name("tumor").is_ok() && schema.field_with_name("normal tissue").is_ok(), "{schema:?}");

    // embed_images with a prompt: the score of the fixture patch for "tumor" is transformers'
    // probability for the same pixels and text (the serving's preprocessing equals the
    // reference's for this square patch).
    let scored = dir.join("images.parquet");
    let (o, stdout, stderr) = run(
        "embed_images",
        &["fixtures/images/patches/patch0.png", "--model", "medsiglip", "--weights", weights, "--prompt", "tumor", "--out", scored.to_str().unwrap()],
    );
    assert!(o.status.success(), "{stdout}\n{stderr}");
    let file = std::fs::File::open(&scored).unwrap();
    let b = ParquetRecordBatchReaderBuilder::try_new(file).unwrap().build().unwrap().next().unwrap().unwrap();
    let got = b.column_by_name("tumor").unwrap().as_any().downcast_ref::<Float32Array>().unwrap().value(0);
    let row = m["image_order"].as_array().unwrap().iter().position(|k| k == "patch0/hf_pil").unwrap();
    let col = m["text_order"].as_array().unwrap().iter().position(|k| k == "plain").unwrap();
    let want = m["probs_per_image"][row][col].as_f64().unwrap() as f32;
    assert!((got - want).abs() <= 1e-4 * want, "score {got} vs transformers {want}");

    // A model without a text side is told so.
    let (o, _, stderr) = run("embed_text", &["tumor", "--out", out.to_str().unwrap()]);
    assert!(!o.status.success() && stderr.contains("no text side"), "{stderr}");
    let _ = std::fs::remove_dir_all(&dir);
}
