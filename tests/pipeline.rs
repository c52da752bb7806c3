//! The slide → embeddings → Parquet → heatmap pipeline on the fixture slide, checked through
//! independent paths: the parquet crate's reader and pyarrow for the file, the reader and
//! encoder called directly for the values.

mod common;

use common::read_embeddings;

use arrow_array::{Array, FixedSizeListArray, Float32Array, StringArray, UInt32Array};
use haidef_wsi::encoders::candle::{DType, Device};
use haidef_wsi::encoders::{path_foundation, Encoder, VitEncoder};
use haidef_wsi::encoders::{Batcher, ImageRef};
use haidef_wsi::wsi::Slide;
use haidef_wsi::{LevelChoice, PipelineError, PipelineOptions, RunSummary, SlideJob};
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicBool;
use std::sync::OnceLock;

fn fixture() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("fixtures/slides/ihc-sparse")
}

fn model() -> &'static VitEncoder {
    static M: OnceLock<VitEncoder> = OnceLock::new();
    M.get_or_init(|| path_foundation::untrained(&Device::Cpu, DType::F32).unwrap())
}

fn out_dir(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("haidef-pipeline-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    d
}

fn opts() -> PipelineOptions {
    // Level 1 (1 µm/px, 1250×900): a 5×4 grid, all patches, 3 clusters.
    PipelineOptions::default().level(LevelChoice::Mpp(1.0)).all_patches(true).k(3).seed(11)
}

/// Small batches, so the last one is partial.
const BATCH: usize = 6;

fn run_into(dir: &Path, opts: &PipelineOptions) -> Result<RunSummary, PipelineError> {
    let slide = Slide::open(fixture()).unwrap();
    SlideJob::new(&slide, model(), dir).options(opts.clone()).batch_size(BATCH).run()
}

#[test]
fn embeddings_file_holds_what_the_encoder_gives_for_each_patch() {
    let dir = out_dir("main");
    let s = run_into(&dir, &opts()).unwrap();
    assert_eq!((s.level, s.patches_total, s.embedded, s.patches_skipped), (1, 20, 20, 0));
    assert!(!s.trained);

    // Read back with the parquet crate.
    let file = std::fs::File::open(dir.join("embeddings.parquet")).unwrap();
    let builder = ParquetRecordBatchReaderBuilder::try_new(file).unwrap();
    let meta = common::key_value_metadata(&builder);
    assert_eq!(meta["model_id"], "google/path-foundation");
    assert_eq!(meta["weights_sha256"], "untrained");
    assert!(meta["warning"].contains("UNTRAINED"));
    assert!(meta["library_version"].starts_with("haidef-wsi "));
    assert!(meta["input_scaling"].contains("x/255"));
    let batches: Vec<_> = builder.build().unwrap().map(|b| b.unwrap()).collect();
    let rows: usize = batches.iter().map(|b| b.num_rows()).sum();
    assert_eq!(rows, 20);

    // Recompute each row's embedding independently: region read + batcher + encoder.
    let slide = Slide::open(fixture()).unwrap();
    let level = slide.level(1).unwrap();
    let mut batcher = Batcher::new(model().input_spec().clone(), 1, Device::Cpu, DType::F32).unwrap();
    let mut seen = Vec::new();
    for b in &batches {
        let col = |name: &str| b.column_by_name(name).unwrap().clone();
        let slide_id = col("slide_id");
        let slide_id = slide_id.as_any().downcast_ref::<StringArray>().unwrap();
        let xs = col("x");
        let xs = xs.as_any().downcast_ref::<UInt32Array>().unwrap();
        let ys = col("y");
        let ys = ys.as_any().downcast_ref::<UInt32Array>().unwrap();
        let tf = col("tissue_fraction");
        let tf = tf.as_any().downcast_ref::<Float32Array>().unwrap();
        let emb = col("embedding");
        let emb = emb.as_any().downcast_ref::<FixedSizeListArray>().unwrap();
        assert_eq!(emb.value_length(), 384);
        for i in 0..b.num_rows() {
            assert_eq!(slide_id.value(i), slide.series_instance_uid());
            assert!((0.0..=1.0).contains(&tf.value(i)));
            let (x, y) = (xs.value(i), ys.value(i));
            seen.push((x, y));
            let region = level.read_region(i64::from(x), i64::from(y), 224, 224).unwrap();
            let direct = model().embed(&batcher.pack(&[ImageRef::rgb(224, 224, &region.data)]).unwrap()).unwrap();
            let direct = direct.flatten_all().unwrap().to_vec1::<f32>().unwrap();
            let stored = emb.value(i);
            let stored = stored.as_any().downcast_ref::<Float32Array>().unwrap().values().to_vec();
            let err: f32 = direct.iter().zip(&stored).map(|(a, b)| (a - b).abs()).fold(0.0, f32::max);
            assert!(err < 1e-4, "row {i} ({x},{y}): differs by {err}");
        }
    }
    // Row-major grid order.
    let expected: Vec<(u32, u32)> = (0..4).flat_map(|r| (0..5).map(move |c| (c * 224, r * 224))).collect();
    assert_eq!(seen, expected);

    // Pictures exist and decode; nothing half-written is left.
    for name in ["heatmap.png", "clusters.png"] {
        let f = std::fs::File::open(dir.join(name)).unwrap();
        let info = png::Decoder::new(std::io::BufReader::new(f)).read_info().unwrap().info().clone();
        assert!(info.width > 0 && info.height > 0);
    }
    let leftovers: Vec<_> = std::fs::read_dir(&dir).unwrap().filter(|e| e.as_ref().unwrap().file_name().to_string_lossy().ends_with(".partial")).collect();
    assert!(leftovers.is_empty());
}

#[test]
fn pyarrow_reads_the_file() {
    let dir = out_dir("pyarrow");
    run_into(&dir, &opts()).unwrap();
    let script = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/read_parquet.py");
    let out = std::process::Command::new("python3")
        .arg(&script)
        .arg(dir.join("embeddings.parquet"))
        .args(["20", "384"])
        .output()
        .expect("python3 (with pyarrow, installed by .ci/run) must be available");
    assert!(out.status.success(), "pyarrow check failed: {}", String::from_utf8_lossy(&out.stderr));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["rows"], 20);
    assert_eq!(v["metadata"]["model_id"], "google/path-foundation");
    assert_eq!(v["first"]["x"], 0);
}

#[test]
fn clusters_are_deterministic_for_a_seed() {
    let a = run_into(&out_dir("det-a"), &opts()).unwrap();
    let b = run_into(&out_dir("det-b"), &opts()).unwrap();
    assert_eq!(a.labels, b.labels);
    assert_eq!(a.labels.len(), 20);
    assert!(a.labels.iter().all(|l| *l < 3));
    // The same seed gives the same picture too.
    let pa = std::fs::read(a.outputs[1].clone()).unwrap();
    let pb = std::fs::read(b.outputs[1].clone()).unwrap();
    assert!(pa == pb);
}

#[test]
fn tissue_filter_keeps_tissue_patches() {
    let dir = out_dir("tissue");
    let o = opts().all_patches(false).min_tissue(0.5).k(2);
    let s = run_into(&dir, &o).unwrap();
    assert_eq!(s.embedded + s.patches_skipped, 20);
    assert!(s.embedded > 0 && s.patches_skipped > 0, "{} kept", s.embedded);
    let file = std::fs::File::open(dir.join("embeddings.parquet")).unwrap();
    let reader = ParquetRecordBatchReaderBuilder::try_new(file).unwrap().build().unwrap();
    for b in reader {
        let b = b.unwrap();
        let tf = b.column_by_name("tissue_fraction").unwrap().as_any().downcast_ref::<Float32Array>().unwrap().clone();
        assert!(tf.values().iter().all(|f| *f >= 0.5));
    }
}

#[test]
fn bad_options_are_clear_and_leave_nothing() {
    let check = |name: &str, o: PipelineOptions, want: &str| {
        let dir = out_dir(name);
        let err = run_into(&dir, &o).unwrap_err().to_string();
        assert!(err.contains(want), "{name}: {err}");
        if dir.exists() {
            let files: Vec<_> = std::fs::read_dir(&dir).unwrap().collect();
            assert!(files.is_empty(), "{name}: left {files:?}");
        }
    };
    check("level", opts().level(LevelChoice::Index(9)), "level 9 does not exist");
    check("mpp", opts().level(LevelChoice::Mpp(40.0)), "beyond this pyramid");
    check("k", opts().k(21), "only 20 patches");
    check("tissue", opts().all_patches(false).min_tissue(1.01), "no tissue found");

    // An output directory that cannot be created (a file is in the way).
    let blocker = out_dir("blocked");
    std::fs::write(&blocker, b"x").unwrap();
    let err = run_into(&blocker.join("sub"), &opts()).unwrap_err();
    assert!(matches!(err, PipelineError::Output { .. }), "{err}");
    // The cause is kept, not flattened into text: the I/O error itself.
    let cause = std::error::Error::source(&err).and_then(|e| e.downcast_ref::<std::io::Error>());
    assert!(cause.is_some(), "no io::Error under {err:?}");
    std::fs::remove_file(&blocker).unwrap();

    // Cancelled before it starts: an error, and no file that looks finished.
    let dir = out_dir("cancel");
    let slide = Slide::open(fixture()).unwrap();
    let err = SlideJob::new(&slide, model(), &dir).options(opts()).batch_size(BATCH).cancel(&AtomicBool::new(true)).run().unwrap_err();
    assert!(matches!(err, PipelineError::Cancelled), "{err}");
    assert!(!dir.join("embeddings.parquet").exists() && !dir.join("embeddings.parquet.partial").exists());
}

#[test]
fn icc_conversion_is_applied_and_recorded() {
    // The fixture carries the dicomizer's sRGB profile: converting it to sRGB must change
    // almost nothing, and the run must say what it did. (That the step changes what it should
    // is checked on a ProPhoto RGB slide, below.)
    let plain = run_into(&out_dir("icc-off"), &opts()).unwrap();
    assert_eq!(plain.color_transform, "none");
    let dir = out_dir("icc-on");
    let s = run_into(&dir, &opts().icc_to_srgb(true)).unwrap();
    assert!(s.color_transform.starts_with("ICC ") && s.color_transform.ends_with("-> sRGB (lcms2, perceptual)"), "{}", s.color_transform);
    let file = std::fs::File::open(dir.join("embeddings.parquet")).unwrap();
    let builder = ParquetRecordBatchReaderBuilder::try_new(file).unwrap();
    let kv = builder.metadata().file_metadata().key_value_metadata().unwrap().clone();
    assert!(kv.iter().any(|e| e.key == "color_transform" && e.value.as_deref().unwrap_or("").starts_with("ICC ")));
    let read = |dir: &Path| -> Vec<f32> {
        let f = std::fs::File::open(dir.join("embeddings.parquet")).unwrap();
        ParquetRecordBatchReaderBuilder::try_new(f)
            .unwrap()
            .build()
            .unwrap()
            .flat_map(|b| {
                let b = b.unwrap();
                let e = b.column_by_name("embedding").unwrap().as_any().downcast_ref::<FixedSizeListArray>().unwrap().clone();
                e.values().as_any().downcast_ref::<Float32Array>().unwrap().values().to_vec()
            })
            .collect()
    };
    let (a, b) = (read(&out_dir_existing("icc-off")), read(&dir));
    let dot: f64 = a.iter().zip(&b).map(|(x, y)| f64::from(*x) * f64::from(*y)).sum();
    let na: f64 = a.iter().map(|x| f64::from(*x).powi(2)).sum::<f64>().sqrt();
    let nb: f64 = b.iter().map(|x| f64::from(*x).powi(2)).sum::<f64>().sqrt();
    assert!(dot / (na * nb) > 0.999, "cosine {}", dot / (na * nb));
}

/// The ProPhoto RGB slide (fixtures/icc/README.md): converting it to sRGB moves its pixels by
/// 14 levels on average. The pipeline's embeddings with `icc_to_srgb` must be those of the
/// pixels Pillow's ImageCms made of the same level (`fixtures/icc/level-0.srgb.png`), and far
/// from those of the unconverted pixels; the transform itself must match Pillow within a level.
#[test]
fn icc_conversion_gives_what_an_independent_colour_manager_gives() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let slide = Slide::open(root.join("fixtures/slides/ihc-raw-prophoto")).unwrap();
    let level = slide.level(0).unwrap();
    let (w, h) = (level.width() as usize, level.height() as usize);
    let reference = {
        let f = std::fs::File::open(root.join("fixtures/icc/level-0.srgb.png")).unwrap();
        let mut r = png::Decoder::new(std::io::BufReader::new(f)).read_info().unwrap();
        let mut buf = vec![0; r.output_buffer_size().unwrap()];
        let info = r.next_frame(&mut buf).unwrap();
        assert_eq!((info.width as usize, info.height as usize, info.color_type), (w, h, png::ColorType::Rgb));
        buf.truncate(info.buffer_size());
        buf
    };
    let raw = level.read_all().unwrap().data;
    let max_diff = |a: &[u8], b: &[u8]| a.iter().zip(b).map(|(x, y)| x.abs_diff(*y)).max().unwrap();
    assert!(max_diff(&raw, &reference) > 40, "the fixture's profile must change the pixels");

    // The transform alone, on the whole level.
    let icc = level.info().icc_profile.clone().expect("the fixture carries a profile");
    let mut ours = raw.clone();
    haidef_wsi::ToSrgb::from_icc(&icc).unwrap().apply(&mut ours);
    assert!(max_diff(&ours, &reference) <= 1, "lcms2 vs Pillow ImageCms: {} levels", max_diff(&ours, &reference));

    // The pipeline with and without it.
    let run = |icc_to_srgb: bool| {
        let dir = out_dir(&format!("prophoto-{icc_to_srgb}"));
        let opts = PipelineOptions::default().level(LevelChoice::Index(0)).all_patches(true).icc_to_srgb(icc_to_srgb).k(2);
        let s = SlideJob::new(&slide, model(), &dir).options(opts).batch_size(4).run().unwrap();
        (s, read_embeddings(&dir))
    };
    let (on, rows) = run(true);
    assert!(on.color_transform.contains("ProPhoto"), "{}", on.color_transform);
    let (_, rows_off) = run(false);
    let mut batcher = Batcher::new(model().input_spec().clone(), 1, Device::Cpu, DType::F32).unwrap();
    let crop = |x: usize, y: usize| -> Vec<u8> { (y..y + 224).flat_map(|r| reference[(r * w + x) * 3..(r * w + x + 224) * 3].iter().copied()).collect() };
    let rel = |a: &[f32], b: &[f32]| -> f64 {
        let num: f64 = a.iter().zip(b).map(|(p, q)| f64::from(p - q).powi(2)).sum();
        (num / b.iter().map(|q| f64::from(*q).powi(2)).sum::<f64>()).sqrt()
    };
    assert_eq!(rows.len(), (w / 224) * (h / 224));
    for ((x, y, emb), (_, _, emb_off)) in rows.iter().zip(&rows_off) {
        let patch = crop(*x as usize, *y as usize);
        let want = model().embed(&batcher.pack(&[ImageRef::rgb(224, 224, &patch)]).unwrap()).unwrap().flatten_all().unwrap().to_vec1::<f32>().unwrap();
        let (e_on, e_off) = (rel(emb, &want), rel(emb_off, &want));
        assert!(e_on <= 2e-3, "patch ({x}, {y}): {e_on:.2e} from Pillow's pixels' embedding");
        assert!(e_off > 10.0 * 2e-3, "patch ({x}, {y}): without the ICC step only {e_off:.2e} away: the check could not fail");
    }
}

fn out_dir_existing(name: &str) -> PathBuf {
    std::env::temp_dir().join(format!("haidef-pipeline-{}-{name}", std::process::id()))
}

/// Both registered models through the slide pipeline, against timm running the same seeded
/// weights on the same pixels (the lossless JPEG 2000 slide's level-0 grid is reference
/// patches 0–5 of fixtures/encoders/reference.json; wsidicom read them for PyTorch).
#[test]
fn both_models_give_timms_embeddings_through_the_slide_pipeline() {
    use haidef_wsi::encoders::registry;
    let read =
        |p: &str| -> serde_json::Value { serde_json::from_str(&std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join(p)).unwrap()).unwrap() };
    let encoders = read("fixtures/encoders/reference.json");
    let images = read("fixtures/images/reference.json");
    let cases = [("path-foundation", &encoders["vit_s16"]["embeddings"]), ("vit_base_patch16_224", &images["vit_b16"]["patch_embeddings"])];
    let slide = Slide::open(Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/slides/ihc-j2k")).unwrap();
    for (name, want) in cases {
        let model = registry::find(name).unwrap().untrained(&Device::Cpu, DType::F32).unwrap();
        let dir = out_dir(&format!("timm-{name}"));
        let opts = PipelineOptions::default().level(LevelChoice::Index(0)).all_patches(true).k(2);
        let s = SlideJob::new(&slide, model.as_ref(), &dir).options(opts).batch_size(4).run().unwrap();
        assert_eq!(s.embedded, 6, "{name}");
        let rows = read_embeddings(&dir);
        assert_eq!(rows.len(), 6, "{name}");
        for (x, y, ours) in rows {
            // Reference patch k has origin (224 (k mod 3), 224 (k div 3)) for k < 6.
            let k = (y / 224 * 3 + x / 224) as usize;
            let reference: Vec<f32> = want[k].as_array().unwrap().iter().map(|v| v.as_f64().unwrap() as f32).collect();
            let num: f64 = ours.iter().zip(&reference).map(|(a, b)| f64::from(a - b).powi(2)).sum();
            let den: f64 = reference.iter().map(|b| f64::from(*b).powi(2)).sum();
            let e = (num / den).sqrt();
            assert!(e <= 1e-4, "{name}: patch at ({x}, {y}): relative error {e:.2e} vs timm");
        }
    }
}

/// Zero-shot prompts through the slide job with a SigLIP model (MedSigLIP's widths at depth
/// 2, seeded; the fixture's sentencepiece-trained vocabulary): one score column per prompt,
/// equal to the model's own sigmoid scores of the stored embeddings, one picture per prompt;
/// prompts on a model without a text side, repeated or empty prompts are clear errors.
#[test]
fn prompts_add_score_columns_and_pictures() {
    use haidef_wsi::encoders::candle::Tensor;
    use haidef_wsi::encoders::registry;
    use haidef_wsi::encoders::SiglipTokenizer;
    use haidef_wsi::encoders::{SiglipConfig, SiglipEncoder};
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let tokenizer = SiglipTokenizer::open(&root.join("fixtures/medsiglip/spiece.model"), 64).unwrap();
    let entry = registry::find("medsiglip").unwrap();
    let cfg = SiglipConfig::medsiglip_448().with_depth(2, 2);
    let model = SiglipEncoder::untrained(entry.model_id, entry.input.clone(), &cfg, 0x51C1, Some(tokenizer), &Device::Cpu, DType::F32).unwrap();
    let slide = Slide::open(fixture()).unwrap();
    let prompts = vec!["tumor".to_string(), "normal tissue".to_string()];
    let dir = out_dir("prompts");
    let opts = PipelineOptions::default().level(LevelChoice::Mpp(1.0)).all_patches(true).k(2).prompts(prompts.clone());
    let s = SlideJob::new(&slide, &model, &dir).options(opts.clone()).batch_size(3).run().unwrap();
    assert_eq!(s.embedded, 4, "1250x900 in 448x448 patches");
    for name in ["score-1-tumor.png", "score-2-normal-tissue.png"] {
        assert!(s.outputs.contains(&dir.join(name)), "{name} not in {:?}", s.outputs);
        let f = std::fs::File::open(dir.join(name)).unwrap();
        let info = png::Decoder::new(std::io::BufReader::new(f)).read_info().unwrap().info().clone();
        assert!(info.width > 100 && info.height > 50, "{name}: {}x{}", info.width, info.height);
    }
    // The columns, against the model's own scores (tensor ops) of the stored embeddings.
    let f = std::fs::File::open(dir.join("embeddings.parquet")).unwrap();
    let builder = ParquetRecordBatchReaderBuilder::try_new(f).unwrap();
    assert!(common::key_value_metadata(&builder)["prompts"].contains("normal tissue"));
    let texts = model.embed_texts(&["tumor", "normal tissue"]).unwrap();
    let mut rows = 0;
    for b in builder.build().unwrap() {
        let b = b.unwrap();
        let emb = b.column_by_name("embedding").unwrap().as_any().downcast_ref::<FixedSizeListArray>().unwrap().clone();
        let values = emb.values().as_any().downcast_ref::<Float32Array>().unwrap().values().to_vec();
        let want = model.scores(&Tensor::from_vec(values, (b.num_rows(), 1152), &Device::Cpu).unwrap(), &texts).unwrap().to_vec2::<f32>().unwrap();
        for (j, p) in prompts.iter().enumerate() {
            let col = b.column_by_name(p).unwrap_or_else(|| panic!("no column {p:?}"));
            let col = col.as_any().downcast_ref::<Float32Array>().unwrap();
            for (i, row) in want.iter().enumerate() {
                let (got, want) = (col.value(i), row[j]);
                assert!((got - want).abs() <= 1e-5 * want.abs().max(1e-3), "row {i} {p}: {got} vs {want}");
            }
        }
        rows += b.num_rows();
    }
    assert_eq!(rows, 4);

    // Clear errors.
    let bad = |prompts: Vec<String>, enc: &dyn haidef_wsi::encoders::Encoder| {
        SlideJob::new(&slide, enc, out_dir("bad-prompts")).options(opts.clone().prompts(prompts)).run().unwrap_err().to_string()
    };
    let err = bad(vec!["tumor".into()], model_for_prompts_without_text());
    assert!(err.contains("no text side") && err.contains("--model medsiglip"), "{err}");
    let err = bad(vec!["tumor".into(), "tumor".into()], &model);
    assert!(err.contains("twice"), "{err}");
    let err = bad(vec!["  ".into()], &model);
    assert!(err.contains("empty"), "{err}");
    let err = bad(vec!["x".into()], &model);
    assert!(err.contains("output column"), "{err}");
}

fn model_for_prompts_without_text() -> &'static VitEncoder {
    model()
}
