//! Classifiers on embeddings against scikit-learn and PyTorch: the linear probe (scaler, the
//! cross-validated choice of C, coefficients, test AUC) on three data sets scikit-learn ships,
//! ROC AUC and its bootstrap interval against `roc_auc_score` on the same resamples, the MIL
//! forward pass against a PyTorch module, and the bad inputs of the label and embedding files.
//! References: fixtures/probes/make_reference.py (reference.json, mil_reference.safetensors).

mod common;

use haidef_wsi::encoders::candle::Device;
use haidef_wsi::probe::{self, Level, ProbeError, ProbeOptions, TrainOptions};
use ndarray::Array2;
use serde_json::Value;
use std::path::{Path, PathBuf};

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/probes")
}

fn reference() -> Value {
    serde_json::from_str(&std::fs::read_to_string(fixtures().join("reference.json")).unwrap()).unwrap()
}

fn floats(v: &Value) -> Vec<f64> {
    v.as_array().unwrap().iter().flat_map(|x| if x.is_array() { floats(x) } else { vec![x.as_f64().unwrap()] }).collect()
}

/// Reads a data set through the library (Parquet + labels) and returns its examples, with the
/// reference's train and test rows checked against the label file's split column.
fn load(name: &str) -> (probe::EmbeddingRows, probe::Examples) {
    let rows = probe::read_embeddings(&fixtures().join(format!("{name}.parquet")), "id", "embedding").unwrap();
    let labels_path = fixtures().join(format!("{name}_labels.csv"));
    let labels = probe::read_labels(&labels_path, "id").unwrap();
    let labelled = probe::join(&rows, &labels, &labels_path).unwrap();
    let ex = probe::examples(&rows, &labelled, Level::Row).unwrap();
    (rows, ex)
}

fn tight() -> ProbeOptions {
    ProbeOptions { tolerance: 1e-9, max_iterations: 1000, ..ProbeOptions::default() }
}

fn rel_close(ours: &[f64], theirs: &[f64], tol: f64, what: &str) {
    assert_eq!(ours.len(), theirs.len(), "{what}: lengths");
    let scale = theirs.iter().fold(0f64, |m, v| m.max(v.abs())).max(1e-12);
    for (i, (a, b)) in ours.iter().zip(theirs).enumerate() {
        assert!((a - b).abs() <= tol * scale, "{what}[{i}]: ours {a}, scikit-learn {b} (max |value| {scale})");
    }
}

fn check_dataset(name: &str) {
    let r = reference();
    let d = &r["datasets"][name];
    let (_, ex) = load(name);
    let classes: Vec<String> = d["classes"].as_array().unwrap().iter().map(|c| c.as_str().unwrap().to_string()).collect();
    assert_eq!(ex.classes, classes, "{name}: classes");
    let train_mask = ex.train.clone().expect("split column");
    let train: Vec<usize> = (0..ex.y.len()).filter(|&i| train_mask[i]).collect();
    let test: Vec<usize> = (0..ex.y.len()).filter(|&i| !train_mask[i]).collect();
    let want_train: Vec<usize> = d["train_rows"].as_array().unwrap().iter().map(|v| v.as_u64().unwrap() as usize).collect();
    assert_eq!(train, want_train, "{name}: the split column read");
    let xt = ex.x.select(ndarray::Axis(0), &train);
    let yt: Vec<usize> = train.iter().map(|&i| ex.y[i]).collect();
    let groups: Vec<usize> = (0..train.len()).collect();
    let names: Vec<String> = train.iter().map(|i| format!("g{i}")).collect();
    let probe = probe::fit_linear_probe(xt.view(), &yt, classes.len(), &groups, &names, &tight()).unwrap();

    rel_close(&probe.scaler.mean, &floats(&d["scaler_mean"]), 1e-12, "scaler mean");
    rel_close(&probe.scaler.scale, &floats(&d["scaler_scale"]), 1e-12, "scaler scale");
    // The cross-validation: every C's mean accuracy, and the C chosen.
    let cs = floats(&d["Cs"]);
    let acc = floats(&d["cv_mean_accuracy"]);
    assert_eq!(probe.cv_scores.len(), cs.len());
    for ((c, a), (wc, wa)) in probe.cv_scores.iter().zip(cs.iter().zip(&acc)) {
        assert!((c - wc).abs() <= 1e-12 * wc, "{name}: C {c} vs {wc}");
        // Where the data are (nearly) separable, large Cs leave both solvers short of the
        // optimum after their iteration limits; their fold predictions may differ by a row.
        let tol = if *c <= 1.0 { 1e-9 } else { 0.01 };
        assert!((a - wa).abs() < tol, "{name}: mean CV accuracy at C = {c}: ours {a}, scikit-learn {wa}");
    }
    let want_c = d["C"].as_f64().unwrap();
    assert!((probe.c - want_c).abs() <= 1e-12 * want_c, "{name}: C chosen {} vs scikit-learn's {want_c}", probe.c);
    // Coefficients within 1e-3 relative (of the largest), intercepts centred (multinomial
    // intercepts are defined up to a constant).
    rel_close(&probe.coef.iter().copied().collect::<Vec<_>>(), &floats(&d["coef"]), 1e-3, &format!("{name}: coef"));
    let centre = |v: Vec<f64>| {
        let m = if v.len() > 1 { v.iter().sum::<f64>() / v.len() as f64 } else { 0.0 };
        v.into_iter().map(|x| x - m).collect::<Vec<_>>()
    };
    rel_close(&centre(probe.intercept.clone()), &centre(floats(&d["intercept"])), 1e-3, &format!("{name}: intercept"));
    // Test AUC.
    let p = probe.predict_proba(ex.x.select(ndarray::Axis(0), &test).view());
    let y: Vec<usize> = test.iter().map(|&i| ex.y[i]).collect();
    let ours = probe::auc(p.as_slice().unwrap(), classes.len(), &y).unwrap();
    let theirs = d["test_auc"].as_f64().unwrap();
    assert!((ours - theirs).abs() < 0.005, "{name}: test AUC {ours} vs scikit-learn's {theirs}");
    let want_p = floats(&d["test_proba"]);
    let max_diff = p.iter().zip(&want_p).map(|(a, b)| (a - b).abs()).fold(0f64, f64::max);
    assert!(max_diff < 1e-3, "{name}: test probabilities differ by up to {max_diff}");

    // Fixed Cs against LogisticRegression(C).
    for (c, fit) in d["fixed_c"].as_object().unwrap() {
        let c: f64 = c.parse().unwrap();
        let opts = ProbeOptions { cs: vec![c], ..tight() };
        let p = probe::fit_linear_probe(xt.view(), &yt, classes.len(), &groups, &names, &opts).unwrap();
        rel_close(&p.coef.iter().copied().collect::<Vec<_>>(), &floats(&fit["coef"]), 1e-3, &format!("{name}: coef at C = {c}"));
    }
}

#[test]
fn linear_probe_matches_scikit_learn_binary() {
    check_dataset("breast_cancer");
}

#[test]
fn linear_probe_matches_scikit_learn_three_classes() {
    check_dataset("wine");
}

#[test]
fn linear_probe_matches_scikit_learn_ten_classes() {
    check_dataset("digits");
}

#[test]
fn auc_and_bootstrap_interval_match_roc_auc_score() {
    let r = reference();
    for name in ["breast_cancer", "wine", "digits"] {
        let d = &r["datasets"][name];
        let (_, ex) = load(name);
        let k = d["classes"].as_array().unwrap().len();
        let test: Vec<usize> = d["test_rows"].as_array().unwrap().iter().map(|v| v.as_u64().unwrap() as usize).collect();
        let y: Vec<usize> = test.iter().map(|&i| ex.y[i]).collect();
        let p = floats(&d["test_proba"]);
        let b = &d["bootstrap"];
        let got = probe::auc_with_interval(&p, k, &y, b["resamples"].as_u64().unwrap() as usize, b["seed"].as_u64().unwrap()).unwrap();
        let want = d["test_auc"].as_f64().unwrap();
        assert!((got.auc - want).abs() < 1e-9, "{name}: AUC {} vs roc_auc_score {want}", got.auc);
        assert!((got.low - b["low"].as_f64().unwrap()).abs() < 1e-9, "{name}: interval low {} vs {}", got.low, b["low"]);
        assert!((got.high - b["high"].as_f64().unwrap()).abs() < 1e-9, "{name}: interval high {} vs {}", got.high, b["high"]);
    }
}

#[test]
fn mil_forward_matches_pytorch() {
    let t = haidef_wsi::encoders::candle::safetensors::load(fixtures().join("mil_reference.safetensors"), &Device::Cpu).unwrap();
    let bag = t["input.bag"].flatten_all().unwrap().to_vec1::<f32>().unwrap();
    let logits = t["expected.logits"].to_vec1::<f32>().unwrap();
    let attention = t["expected.attention"].to_vec1::<f32>().unwrap();
    let weights = t.into_iter().filter(|(k, _)| !k.starts_with("input.") && !k.starts_with("expected.")).collect();
    let model = probe::MilModel::from_tensors(weights).unwrap();
    let out = model.forward(&bag, 10).unwrap();
    for (a, b) in out.logits.iter().zip(&logits).chain(out.attention.iter().zip(&attention)) {
        assert!((a - b).abs() < 1e-5, "ours {a}, PyTorch {b}");
    }
    assert_eq!(out.logits.len(), 3);
    assert_eq!(out.attention.len(), 10);
}

#[test]
fn slide_level_mil_learns_bags_of_digits() {
    let path = fixtures().join("digit_bags.parquet");
    let rows = probe::read_embeddings(&path, "slide_id", "embedding").unwrap();
    let labels_path = fixtures().join("digit_bags_labels.csv");
    let labels = probe::read_labels(&labels_path, "slide_id").unwrap();
    let labelled = probe::join(&rows, &labels, &labels_path).unwrap();
    let ex = probe::examples(&rows, &labelled, Level::Slide).unwrap();
    assert_eq!(ex.y.len(), 120);
    assert!(ex.members.iter().all(|m| m.len() == 16));
    let opts = TrainOptions { level: Level::Slide, bootstrap: 100, ..TrainOptions::default() };
    let trained = probe::train(&ex, &rows, 2, &opts, &|_| {}).unwrap();
    let mil = trained.test.iter().find(|f| f.model == "mil").unwrap();
    let mean = trained.test.iter().find(|f| f.model == "linear").unwrap();
    // Whether a bag holds a 9: attention finds the one patch; the mean dilutes it.
    assert!(mil.auc.auc > 0.8 && mil.auc.auc > mean.auc.auc, "MIL test AUC {:?}, mean pooling {:?}", mil.auc, mean.auc);
    assert!(mil.auc.low <= mil.auc.auc && mil.auc.auc <= mil.auc.high);
    assert_eq!(mil.test_examples, 24);
    eprintln!("MIL {:?}, mean pooling {:?}", mil.auc, mean.auc);
}

/// On a GPU (built with `--features cuda`, run where CUDA device 0 exists; `tools/gpu_check.sh`):
/// the MIL forward pass on CUDA equals PyTorch's (1e-4), and MIL trained on CUDA learns the
/// bags of digits (test AUC > 0.8). Skipped, with a message, in CUDA builds on machines without
/// a GPU; absent from CPU builds.
#[cfg(feature = "cuda")]
#[test]
fn cuda_mil_matches_pytorch_and_learns() {
    let Ok(gpu) = Device::new_cuda(0) else {
        eprintln!("no CUDA device 0: cuda_mil_matches_pytorch_and_learns not run");
        return;
    };
    let t = haidef_wsi::encoders::candle::safetensors::load(fixtures().join("mil_reference.safetensors"), &gpu).unwrap();
    let bag = t["input.bag"].flatten_all().unwrap().to_vec1::<f32>().unwrap();
    let logits = t["expected.logits"].to_vec1::<f32>().unwrap();
    let weights = t.into_iter().filter(|(k, _)| !k.starts_with("input.") && !k.starts_with("expected.")).collect();
    let out = probe::MilModel::from_tensors(weights).unwrap().forward(&bag, 10).unwrap();
    for (a, b) in out.logits.iter().zip(&logits) {
        assert!((a - b).abs() < 1e-4, "CUDA {a}, PyTorch {b}");
    }
    let path = fixtures().join("digit_bags.parquet");
    let rows = probe::read_embeddings(&path, "slide_id", "embedding").unwrap();
    let labels_path = fixtures().join("digit_bags_labels.csv");
    let labelled = probe::join(&rows, &probe::read_labels(&labels_path, "slide_id").unwrap(), &labels_path).unwrap();
    let ex = probe::examples(&rows, &labelled, Level::Slide).unwrap();
    let opts = TrainOptions { level: Level::Slide, bootstrap: 100, device: gpu, ..TrainOptions::default() };
    let trained = probe::train(&ex, &rows, 2, &opts, &|_| {}).unwrap();
    let mil = trained.test.iter().find(|f| f.model == "mil").unwrap();
    assert!(mil.auc.auc > 0.8, "MIL on CUDA: test AUC {:?}", mil.auc);
    eprintln!("MIL on CUDA: {:?}, {:?}", mil.auc, trained.mil.as_ref().map(|(_, t)| t));
}

fn err_of(r: Result<impl std::fmt::Debug, ProbeError>) -> String {
    r.expect_err("an error").to_string()
}

fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
    let p = dir.join(name);
    std::fs::write(&p, text).unwrap();
    p
}

fn tmp(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("haidef-probe-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

/// Writes a small embeddings file with pyarrow-free arrow-rs: `id` and `embedding` rows.
fn write_embeddings(path: &Path, ids: &[&str], rows: &[Vec<f32>], model: Option<&str>) {
    use arrow_array::{ArrayRef, FixedSizeListArray, Float32Array, RecordBatch, StringArray};
    use arrow_schema::{DataType, Field, Schema};
    use std::sync::Arc;
    let dim = rows[0].len();
    let item = Arc::new(Field::new("item", DataType::Float32, false));
    let values = Float32Array::from(rows.iter().flatten().copied().collect::<Vec<_>>());
    let emb = FixedSizeListArray::new(item.clone(), dim as i32, Arc::new(values), None);
    let mut schema = Schema::new(vec![Field::new("id", DataType::Utf8, false), Field::new("embedding", DataType::FixedSizeList(item, dim as i32), false)]);
    if let Some(m) = model {
        schema = schema.with_metadata([("model_id".to_string(), m.to_string())].into());
    }
    let schema = Arc::new(schema);
    let batch = RecordBatch::try_new(schema.clone(), vec![Arc::new(StringArray::from(ids.to_vec())) as ArrayRef, Arc::new(emb)]).unwrap();
    let mut w = parquet::arrow::ArrowWriter::try_new(std::fs::File::create(path).unwrap(), schema, None).unwrap();
    w.write(&batch).unwrap();
    w.close().unwrap();
}

#[test]
fn bad_labels_and_embeddings_get_clear_errors() {
    let dir = tmp("bad");
    let emb = dir.join("e.parquet");
    let ids: Vec<String> = (0..12).map(|i| format!("k{i}")).collect();
    let id_refs: Vec<&str> = ids.iter().map(String::as_str).collect();
    let rows: Vec<Vec<f32>> = (0..12).map(|i| vec![i as f32, (i % 3) as f32]).collect();
    write_embeddings(&emb, &id_refs, &rows, Some("path-foundation"));
    let data = probe::read_embeddings(&emb, "id", "embedding").unwrap();

    // Labels for keys that do not exist: how many, and a few.
    let l = write(&dir, "missing.csv", "id,label\nk0,a\nk1,b\nnope1,a\nnope2,b\n");
    let labels = probe::read_labels(&l, "id").unwrap();
    let e = err_of(probe::join(&data, &labels, &l));
    assert!(e.contains("2 of 4 labels") && e.contains("'nope1'") && e.contains("missing.csv"), "{e}");

    // One class only.
    let l = write(&dir, "one.csv", "id,label\nk0,a\nk1,a\n");
    let e = err_of(probe::join(&data, &probe::read_labels(&l, "id").unwrap(), &l));
    assert!(e.contains("every label is 'a'") && e.contains("two classes"), "{e}");

    // A label file keyed by another column.
    let l = write(&dir, "other.csv", "path,label\nk0,a\n");
    let e = err_of(probe::read_labels(&l, "id"));
    assert!(e.contains("no column 'id'") && e.contains("path, label") && e.contains("--key"), "{e}");

    // An embeddings file without the key column, or the embedding column.
    let e = err_of(probe::read_embeddings(&emb, "slide_id", "embedding"));
    assert!(e.contains("no column 'slide_id'") && e.contains("id, embedding"), "{e}");
    let e = err_of(probe::read_embeddings(&emb, "id", "features"));
    assert!(e.contains("no column 'features'") && e.contains("--embedding-column"), "{e}");

    // NaN and infinite values name the row and key.
    let nan = dir.join("nan.parquet");
    let mut bad = rows.clone();
    bad[5][1] = f32::NAN;
    write_embeddings(&nan, &id_refs, &bad, None);
    let e = err_of(probe::read_embeddings(&nan, "id", "embedding"));
    assert!(e.contains("row 5") && e.contains("k5") && e.contains("NaN"), "{e}");
    bad[5][1] = f32::INFINITY;
    write_embeddings(&nan, &id_refs, &bad, None);
    let e = err_of(probe::read_embeddings(&nan, "id", "embedding"));
    assert!(e.contains("row 5") && e.contains("inf"), "{e}");

    // Mixed widths and mixed models in one dataset folder.
    let mixed = dir.join("mixed");
    std::fs::create_dir_all(&mixed).unwrap();
    write_embeddings(&mixed.join("a.parquet"), &id_refs, &rows, Some("path-foundation"));
    write_embeddings(&mixed.join("b.parquet"), &["z"], &[vec![1.0, 2.0, 3.0]], Some("path-foundation"));
    let e = err_of(probe::read_embeddings(&mixed, "id", "embedding"));
    assert!(e.contains("b.parquet") && e.contains("width 3") && e.contains("width 2"), "{e}");
    write_embeddings(&mixed.join("b.parquet"), &["z"], &[vec![1.0, 2.0]], Some("uni"));
    let e = err_of(probe::read_embeddings(&mixed, "id", "embedding"));
    assert!(e.contains("b.parquet") && e.contains("model uni") && e.contains("path-foundation") && e.contains("cannot be mixed"), "{e}");

    // A class with fewer examples than folds, outside a curve: an error that says so.
    let l = write(&dir, "few.csv", &(0..12).map(|i| format!("k{i},{}\n", if i < 3 { "rare" } else { "common" })).fold("id,label\n".to_string(), |a, b| a + &b));
    let labelled = probe::join(&data, &probe::read_labels(&l, "id").unwrap(), &l).unwrap();
    let ex = probe::examples(&data, &labelled, Level::Row).unwrap();
    let groups: Vec<usize> = (0..12).collect();
    let names: Vec<String> = ids.clone();
    let e = err_of(probe::fit_linear_probe(ex.x.view(), &ex.y, 2, &groups, &names, &ProbeOptions::default()));
    assert!(e.contains("3 training examples") && e.contains("5 cross-validation folds"), "{e}");
    // In a curve the folds shrink, with a warning.
    let opts = ProbeOptions { reduce_folds: true, ..ProbeOptions::default() };
    let p = probe::fit_linear_probe(ex.x.view(), &ex.y, 2, &groups, &names, &opts).unwrap();
    assert_eq!(p.folds_used, 3);
    assert!(p.warnings.iter().any(|w| w.contains("3 cross-validation folds instead of 5")), "{:?}", p.warnings);
    // Groups limit the folds too: the rare class in one patient cannot be cross-validated.
    let one_patient: Vec<usize> = (0..12).map(|i| if i < 3 { 0 } else { i }).collect();
    let e = err_of(probe::fit_linear_probe(ex.x.view(), &ex.y, 2, &one_patient, &names, &ProbeOptions::default()));
    assert!(e.contains("in 1 groups"), "{e}");
    let _ = Array2::<f64>::zeros((1, 1));
}

fn run(name: &str, args: &[&str]) -> (bool, String, String) {
    let out = std::process::Command::new(common::example(name)).args(args).current_dir(common::root()).output().unwrap();
    (out.status.success(), String::from_utf8_lossy(&out.stdout).to_string(), String::from_utf8_lossy(&out.stderr).to_string())
}

fn read_parquet(path: &Path) -> arrow_array::RecordBatch {
    let f = std::fs::File::open(path).unwrap();
    let reader = parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder::try_new(f).unwrap().build().unwrap();
    let batches: Vec<_> = reader.map(Result::unwrap).collect();
    arrow_select_concat(&batches)
}

fn arrow_select_concat(batches: &[arrow_array::RecordBatch]) -> arrow_array::RecordBatch {
    assert_eq!(batches.len(), 1, "one batch in these small files");
    batches[0].clone()
}

#[test]
fn train_and_predict_examples_end_to_end() {
    use arrow_array::cast::AsArray;
    use arrow_array::types::Float64Type;
    let dir = tmp("cli");
    let model = dir.join("model");
    let (ok, out, err) = run(
        "train_probe",
        &[
            "fixtures/probes/breast_cancer.parquet",
            "--labels",
            "fixtures/probes/breast_cancer_labels.csv",
            "--key",
            "id",
            "--out",
            model.to_str().unwrap(),
            "--train-sizes",
            "8,32,128",
            "--repeats",
            "2",
            // scikit-learn's reference was fitted to tol 1e-10; the default (its default, 1e-4)
            // leaves probabilities ~1e-3 from that optimum, as scikit-learn's own default does.
            "--tolerance",
            "1e-9",
        ],
    );
    assert!(ok, "{out}\n{err}");
    assert!(out.contains("C = 0.359381366380"), "the C scikit-learn chooses: {out}");
    assert!(err.contains("curve at 8") && err.contains("cross-validation folds instead of 5"), "the small size's warning: {err}");
    let curve = std::fs::read_to_string(model.join("curve.csv")).unwrap();
    assert_eq!(curve.lines().count(), 1 + 3 * 2, "{curve}");
    let png = png::Decoder::new(std::io::BufReader::new(std::fs::File::open(model.join("curve.png")).unwrap())).read_info().unwrap();
    assert_eq!((png.info().width, png.info().height), (800, 480));
    let desc: Value = serde_json::from_str(&std::fs::read_to_string(model.join("model.json")).unwrap()).unwrap();
    assert_eq!(desc["classes"], serde_json::json!(["benign", "malignant"]));
    assert_eq!(desc["cv_scoring"], "accuracy");
    let split = std::fs::read_to_string(model.join("split.csv")).unwrap();
    let given = std::fs::read_to_string("fixtures/probes/breast_cancer_labels.csv").unwrap();
    let rows = |t: &str| t.lines().skip(1).map(|l| l.split(',').take(3).collect::<Vec<_>>().join(",")).collect::<std::collections::BTreeSet<_>>();
    assert_eq!(rows(&split), rows(&given), "split.csv: each key's label and split as given");

    // Predictions on the test rows equal scikit-learn's.
    let pred = dir.join("pred.parquet");
    let (ok, out, err) = run("predict_probe", &[model.to_str().unwrap(), "fixtures/probes/breast_cancer.parquet", "--out", pred.to_str().unwrap()]);
    assert!(ok, "{out}\n{err}");
    let batch = read_parquet(&pred);
    assert_eq!(batch.num_rows(), 569);
    let p1 = batch.column_by_name("p_malignant").unwrap().as_primitive::<Float64Type>();
    let p0 = batch.column_by_name("p_benign").unwrap().as_primitive::<Float64Type>();
    let r = reference();
    let d = &r["datasets"]["breast_cancer"];
    let want = floats(&d["test_proba"]);
    for (j, row) in d["test_rows"].as_array().unwrap().iter().enumerate() {
        let i = row.as_u64().unwrap() as usize;
        assert!((p1.value(i) - want[j * 2 + 1]).abs() < 1e-3, "row {i}: p_malignant {} vs scikit-learn {}", p1.value(i), want[j * 2 + 1]);
        assert!((p0.value(i) + p1.value(i) - 1.0).abs() < 1e-12);
    }

    // A slide-level model on bags: per-slide rows, maps and QuPath GeoJSON.
    let bags = dir.join("bags");
    let (ok, out, err) = run(
        "train_probe",
        &[
            "fixtures/probes/digit_bags.parquet",
            "--labels",
            "fixtures/probes/digit_bags_labels.csv",
            "--key",
            "slide_id",
            "--level",
            "slide",
            "--out",
            bags.to_str().unwrap(),
            "--bootstrap",
            "100",
        ],
    );
    assert!(ok, "{out}\n{err}");
    assert!(out.contains("test: mil") && out.contains("test: linear"), "{out}");
    // The split used, as a labels file: every bag once, its label, a seeded fifth as test;
    // passed back as --labels it gives the same test figures.
    let split = std::fs::read_to_string(bags.join("split.csv")).unwrap();
    let lines: Vec<&str> = split.lines().collect();
    assert_eq!(lines[0], "slide_id,label,split");
    assert_eq!(lines.len(), 121);
    assert_eq!(lines.iter().filter(|l| l.ends_with(",test")).count(), 24);
    let labels = std::fs::read_to_string("fixtures/probes/digit_bags_labels.csv").unwrap();
    for l in labels.lines().skip(1) {
        assert!(lines.iter().any(|s| s.starts_with(&format!("{l},"))), "{l} in split.csv");
    }
    let again = dir.join("bags-again");
    let (ok, out2, err) = run(
        "train_probe",
        &[
            "fixtures/probes/digit_bags.parquet",
            "--labels",
            bags.join("split.csv").to_str().unwrap(),
            "--key",
            "slide_id",
            "--level",
            "slide",
            "--out",
            again.to_str().unwrap(),
            "--bootstrap",
            "100",
        ],
    );
    assert!(ok, "{out2}\n{err}");
    let figures = |o: &str| o.lines().filter(|l| l.starts_with("test: linear")).map(str::to_string).collect::<Vec<_>>();
    assert_eq!(figures(&out), figures(&out2), "the linear probe's test figures on the split read back");
    let pred = dir.join("bags.parquet");
    let (ok, out, err) = run(
        "predict_probe",
        &[bags.to_str().unwrap(), "fixtures/probes/digit_bags.parquet", "--out", pred.to_str().unwrap(), "--class", "has_nine", "--k", "4"],
    );
    assert!(ok, "{out}\n{err}");
    let batch = read_parquet(&pred);
    assert_eq!(batch.num_rows(), 120);
    for c in ["slide_id", "p_has_nine", "p_no_nine", "mil_p_has_nine", "mil_p_no_nine"] {
        assert!(batch.column_by_name(c).is_some(), "column {c}");
    }
    for f in ["bags-bag-000-p_has_nine.png", "bags-bag-000-attention.png", "bags-bag-000.geojson"] {
        assert!(dir.join(f).exists(), "{f}");
    }
    let geo: Value = serde_json::from_str(&std::fs::read_to_string(dir.join("bags-bag-000.geojson")).unwrap()).unwrap();
    assert_eq!(geo["type"], "FeatureCollection");
    let features = geo["features"].as_array().unwrap();
    assert_eq!(features.len(), 16);
    let f = &features[0];
    assert_eq!(f["properties"]["objectType"], "detection");
    let m = &f["properties"]["measurements"];
    assert!(m["p_has_nine"].is_number() && m["attention"].is_number() && m["cluster"].is_number(), "{m}");
    let ring = f["geometry"]["coordinates"][0].as_array().unwrap();
    assert_eq!(ring.len(), 5);
    assert_eq!(ring[0], ring[4]);

    // Bad input through the example: labels keyed by another column.
    let (ok, _, err) = run(
        "train_probe",
        &[
            "fixtures/probes/breast_cancer.parquet",
            "--labels",
            "fixtures/probes/digit_bags_labels.csv",
            "--key",
            "id",
            "--out",
            dir.join("x").to_str().unwrap(),
        ],
    );
    assert!(!ok && err.contains("no column 'id'") && !err.contains("panicked"), "{err}");
}
