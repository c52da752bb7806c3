//! A trained classifier on disk, a folder: `model.json` (classes, level, key column, the
//! embedding width and model, the C chosen, the options, the test figures),
//! `linear.safetensors` (`coef` outputs × dim, `intercept`, the scaler's `mean` and `scale`,
//! all f64), at slide level `mil.safetensors` (the MIL layers, f32), and `split.csv` (the
//! split used, as a labels file).

use crate::probe::error::{ProbeError, ProbeResult};
use crate::probe::linear::{LinearProbe, Scaler};
use crate::probe::mil::MilModel;
use crate::probe::train::{Examples, Level, Trained};
use haidef_wsi_encoders::candle::{Device, Tensor};
use serde_json::{json, Value};
use std::collections::HashMap;
use std::path::Path;

/// Writes `split.csv` into `dir`: each example's key (once), class and side of the test split
/// (`train`/`test`), and its group where the labels gave groups. Passed back as `--labels` it
/// trains on the same split.
pub fn write_split(dir: &Path, key_column: &str, ex: &Examples, train_mask: &[bool]) -> ProbeResult<()> {
    let path = dir.join("split.csv");
    let err = |e: csv::Error| ProbeError::file(&path, e);
    let with_groups = !ex.group_names.iter().any(|g| g.starts_with("key:"));
    let mut w = csv::Writer::from_path(&path).map_err(err)?;
    let mut header = vec![key_column, "label", "split"];
    if with_groups {
        header.push("group");
    }
    w.write_record(&header).map_err(err)?;
    let mut seen = std::collections::HashSet::new();
    for (i, key) in ex.keys.iter().enumerate() {
        if !seen.insert(key.as_str()) {
            continue;
        }
        let side = if train_mask[i] { "train" } else { "test" };
        let mut record = vec![key.as_str(), ex.classes[ex.y[i]].as_str(), side];
        if with_groups {
            record.push(ex.group_names[ex.groups[i]].as_str());
        }
        w.write_record(&record).map_err(err)?;
    }
    w.flush().map_err(|e| ProbeError::file(&path, e))
}

/// The format tag in `model.json`.
pub const FORMAT: &str = "haidef-wsi probe 1";

/// A classifier loaded from its folder.
#[derive(Debug, Clone)]
pub struct SavedProbe {
    /// The classes, in the order of the probability columns.
    pub classes: Vec<String>,
    /// Row or slide level.
    pub level: Level,
    /// The key column the labels were joined on.
    pub key_column: String,
    /// Width of the embeddings.
    pub dim: usize,
    /// The model of the embeddings it was trained on (`model_id`), when known.
    pub embedding_model: Option<String>,
    /// The linear probe.
    pub linear: LinearProbe,
    /// The MIL model (slide level).
    pub mil: Option<MilModel>,
    /// `model.json` as written.
    pub description: Value,
}

fn tensor_err(path: &Path) -> impl Fn(candle_core::Error) -> ProbeError + '_ {
    move |e| ProbeError::file(path, e)
}

/// What a saved classifier was trained on.
#[derive(Debug, Clone, Copy)]
pub struct TrainedOn<'a> {
    /// The classes, by class index.
    pub classes: &'a [String],
    /// Row or slide level.
    pub level: Level,
    /// The key column.
    pub key_column: &'a str,
    /// Width of the embeddings.
    pub dim: usize,
    /// The embeddings' model (`model_id`), when known.
    pub embedding_model: Option<&'a str>,
}

/// Writes `trained` into `dir` (created), with `description` (the run's options and figures)
/// merged into `model.json`.
pub fn save(dir: &Path, trained: &Trained, on: &TrainedOn<'_>, description: Value) -> ProbeResult<()> {
    let TrainedOn { classes, level, key_column, dim, embedding_model } = *on;
    std::fs::create_dir_all(dir).map_err(|e| ProbeError::file(dir, e))?;
    let p = &trained.linear;
    let lin = dir.join("linear.safetensors");
    let e = tensor_err(&lin);
    let (rows, cols) = p.coef.dim();
    let tensors: HashMap<String, Tensor> = HashMap::from([
        ("coef".to_string(), Tensor::from_vec(p.coef.iter().copied().collect::<Vec<f64>>(), (rows, cols), &Device::Cpu).map_err(&e)?),
        ("intercept".to_string(), Tensor::from_vec(p.intercept.clone(), rows, &Device::Cpu).map_err(&e)?),
        ("mean".to_string(), Tensor::from_vec(p.scaler.mean.clone(), cols, &Device::Cpu).map_err(&e)?),
        ("scale".to_string(), Tensor::from_vec(p.scaler.scale.clone(), cols, &Device::Cpu).map_err(&e)?),
    ]);
    candle_core::safetensors::save(&tensors, &lin).map_err(&e)?;
    if trained.mil.is_none() {
        // A MIL model left from an earlier run in this folder must not be loaded with this one.
        let stale = dir.join("mil.safetensors");
        if stale.exists() {
            std::fs::remove_file(&stale).map_err(|e| ProbeError::file(&stale, e))?;
        }
    }
    if let Some((mil, _)) = &trained.mil {
        let path = dir.join("mil.safetensors");
        let cpu: HashMap<String, Tensor> =
            mil.tensors.iter().map(|(k, v)| Ok((k.clone(), v.to_device(&Device::Cpu)?))).collect::<candle_core::Result<_>>().map_err(tensor_err(&path))?;
        candle_core::safetensors::save(&cpu, &path).map_err(tensor_err(&path))?;
    }
    let mut model = json!({
        "format": FORMAT,
        "classes": classes,
        "level": match level { Level::Row => "row", Level::Slide => "slide" },
        "key_column": key_column,
        "dim": dim,
        "embedding_model": embedding_model,
        "c": p.c,
        "cv_accuracy": p.cv_scores.iter().map(|(c, s)| json!({"c": c, "mean_accuracy": s})).collect::<Vec<_>>(),
        "cv_folds": p.folds_used,
        "models": if trained.mil.is_some() { json!(["linear", "mil"]) } else { json!(["linear"]) },
    });
    if let (Value::Object(m), Value::Object(extra)) = (&mut model, description) {
        m.extend(extra);
    }
    let path = dir.join("model.json");
    std::fs::write(&path, serde_json::to_string_pretty(&model).expect("json")).map_err(|e| ProbeError::file(&path, e))
}

/// Loads the classifier in `dir`.
pub fn load(dir: &Path, device: &Device) -> ProbeResult<SavedProbe> {
    let path = dir.join("model.json");
    let text = std::fs::read_to_string(&path).map_err(|e| ProbeError::file(&path, format!("{e}; give the folder train_probe wrote (--out)")))?;
    let v: Value = serde_json::from_str(&text).map_err(|e| ProbeError::data(&path, format!("not JSON: {e}")))?;
    if v["format"] != FORMAT {
        return Err(ProbeError::data(&path, format!("format {} is not '{FORMAT}'", v["format"])));
    }
    let bad = |what: &str| ProbeError::data(&path, format!("missing or wrong '{what}'"));
    let classes: Vec<String> = v["classes"].as_array().ok_or_else(|| bad("classes"))?.iter().map(|c| c.as_str().unwrap_or("").to_string()).collect();
    let level = match v["level"].as_str() {
        Some("row") => Level::Row,
        Some("slide") => Level::Slide,
        _ => return Err(bad("level")),
    };
    let key_column = v["key_column"].as_str().ok_or_else(|| bad("key_column"))?.to_string();
    let dim = v["dim"].as_u64().ok_or_else(|| bad("dim"))? as usize;
    let lin = dir.join("linear.safetensors");
    let e = tensor_err(&lin);
    let t = candle_core::safetensors::load(&lin, &Device::Cpu).map_err(&e)?;
    let get = |name: &str| -> ProbeResult<Tensor> { t.get(name).cloned().ok_or_else(|| ProbeError::data(&lin, format!("no tensor '{name}'"))) };
    let coef = get("coef")?;
    let (rows, cols) = coef.dims2().map_err(&e)?;
    let expected_rows = if classes.len() == 2 { 1 } else { classes.len() };
    if cols != dim || rows != expected_rows {
        return Err(ProbeError::data(&lin, format!("coef is {rows} × {cols}; model.json says {expected_rows} × {dim}")));
    }
    let coef = ndarray::Array2::from_shape_vec((rows, cols), coef.flatten_all().and_then(|t| t.to_vec1::<f64>()).map_err(&e)?).expect("shape checked");
    let vec = |name: &str| -> ProbeResult<Vec<f64>> { get(name)?.to_vec1::<f64>().map_err(&e) };
    let (mean, scale, intercept) = (vec("mean")?, vec("scale")?, vec("intercept")?);
    if mean.len() != dim || scale.len() != dim || intercept.len() != rows {
        return Err(ProbeError::data(
            &lin,
            format!("mean, scale and intercept have {}, {} and {} values; expected {dim}, {dim} and {rows}", mean.len(), scale.len(), intercept.len()),
        ));
    }
    let linear = LinearProbe {
        scaler: Scaler { mean, scale },
        coef,
        intercept,
        n_classes: classes.len(),
        c: v["c"].as_f64().unwrap_or(f64::NAN),
        cv_scores: Vec::new(),
        folds_used: v["cv_folds"].as_u64().unwrap_or(0) as usize,
        warnings: Vec::new(),
    };
    let mil_path = dir.join("mil.safetensors");
    let mil = if mil_path.exists() {
        let t = candle_core::safetensors::load(&mil_path, device).map_err(tensor_err(&mil_path))?;
        let m = MilModel::from_tensors(t)?;
        if m.n_classes != classes.len() || m.dim() != dim {
            return Err(ProbeError::data(
                &mil_path,
                format!("a MIL model of {} classes on width {}; model.json says {} classes on width {dim}", m.n_classes, m.dim(), classes.len()),
            ));
        }
        Some(m)
    } else {
        None
    };
    Ok(SavedProbe { classes, level, key_column, dim, embedding_model: v["embedding_model"].as_str().map(str::to_string), linear, mil, description: v })
}
