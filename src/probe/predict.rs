//! `predict_probe`: a saved classifier applied to embeddings. Writes the key column and one
//! probability column per class, `p_<class>`, per row (row level, or the patches of slide-level
//! models) or per slide; for slide files, per slide: a map of one class's probability on the
//! patch grid, the MIL attention map, and a GeoJSON of every patch (level-0 pixels, QuPath's
//! detections) with the probabilities and its k-means cluster as measurements.

use crate::maps::render::{render_value_map, PALETTE};
use crate::output::atomic::AtomicFile;
use crate::probe::embeddings::{EmbeddingRows, PatchPlace};
use crate::probe::error::{ProbeError, ProbeResult};
use crate::probe::linear::argmax;
use crate::probe::saved::SavedProbe;
use crate::probe::train::Level;
use arrow_array::{ArrayRef, Float64Array, RecordBatch, StringArray, UInt32Array};
use arrow_schema::{DataType, Field, Schema};
use ndarray::Array2;
use serde_json::json;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// What `predict` wrote.
#[derive(Debug, Clone, Default)]
pub struct Predicted {
    /// Rows in the Parquet file.
    pub rows: usize,
    /// Pictures and GeoJSON files written.
    pub files: Vec<PathBuf>,
}

/// Options of `predict`.
#[derive(Debug, Clone)]
pub struct PredictOptions {
    /// The class whose probability the maps show (default: the second class of two; every
    /// class of more).
    pub class: Option<String>,
    /// Clusters of the GeoJSON's k-means measurement (0: none).
    pub k: usize,
    /// Seed of k-means.
    pub seed: u64,
}

impl Default for PredictOptions {
    fn default() -> Self {
        PredictOptions { class: None, k: 8, seed: 0 }
    }
}

/// Applies `probe` to `rows` and writes `out` (Parquet) and, for slide patches, the maps and
/// GeoJSON beside it (`<stem>-<slide>-…`).
pub fn predict(probe: &SavedProbe, rows: &EmbeddingRows, out: &Path, opts: &PredictOptions) -> ProbeResult<Predicted> {
    if rows.dim != probe.dim {
        return Err(ProbeError::data(&rows.files[0], format!("embeddings of width {}, but the classifier was trained on width {}", rows.dim, probe.dim)));
    }
    if let (Some(a), Some(b)) = (&rows.model_id, &probe.embedding_model) {
        if a != b {
            return Err(ProbeError::data(&rows.files[0], format!("embeddings of model {a}, but the classifier was trained on {b}'s")));
        }
    }
    let classes = &probe.classes;
    let shown: Vec<usize> = match &opts.class {
        Some(c) => {
            vec![classes.iter().position(|k| k == c).ok_or_else(|| ProbeError::Options(format!("no class '{c}'; the classes are {}", classes.join(", "))))?]
        }
        None if classes.len() == 2 => vec![1],
        None => (0..classes.len()).collect(),
    };
    let x = rows.matrix(&(0..rows.len()).collect::<Vec<_>>());
    // Per row: the linear probe on each row (at slide level, a patch's own score).
    let per_row = probe.linear.predict_proba(x.view());
    let mut written = Predicted::default();
    // MIL's attention over each row, from its key's bag (slide level with MIL).
    let mut attention: Option<Vec<f32>> = None;
    match probe.level {
        Level::Row => {
            write_parquet(out, &probe.key_column, &rows.keys, rows.slides.as_deref(), rows.places.as_deref(), classes, &per_row, None)?;
            written.rows = rows.len();
        }
        Level::Slide => {
            // One row per key: the linear probe on the mean, and MIL on the bag.
            let mut by_key: BTreeMap<&str, Vec<usize>> = BTreeMap::new();
            rows.keys.iter().enumerate().for_each(|(i, k)| by_key.entry(k.as_str()).or_default().push(i));
            let keys: Vec<String> = by_key.keys().map(|k| k.to_string()).collect();
            let mut mean = Array2::zeros((keys.len(), rows.dim));
            let mut mil = Array2::zeros((keys.len(), classes.len()));
            for (e, members) in by_key.values().enumerate() {
                mean.row_mut(e).assign(&rows.mean(members));
                if let Some(m) = &probe.mil {
                    let (p, a) = m.predict_proba(&rows.bag(members), members.len())?;
                    mil.row_mut(e).assign(&ndarray::Array1::from(p));
                    let per_row = attention.get_or_insert_with(|| vec![0.0; rows.len()]);
                    members.iter().zip(a).for_each(|(&r, v)| per_row[r] = v);
                }
            }
            let p = probe.linear.predict_proba(mean.view());
            write_parquet(out, &probe.key_column, &keys, None, None, classes, &p, probe.mil.as_ref().map(|_| &mil))?;
            written.rows = keys.len();
        }
    }
    if let Some(places) = &rows.places {
        let maps = Maps { per_row: &per_row, attention: attention.as_deref(), shown: &shown };
        written.files = draw(probe, rows, places, &maps, out, opts)?;
    }
    Ok(written)
}

#[allow(clippy::too_many_arguments)]
fn write_parquet(
    out: &Path,
    key: &str,
    keys: &[String],
    slides: Option<&[String]>,
    places: Option<&[PatchPlace]>,
    classes: &[String],
    p: &Array2<f64>,
    mil: Option<&Array2<f64>>,
) -> ProbeResult<()> {
    let mut fields = vec![Field::new(key, DataType::Utf8, false)];
    let mut cols: Vec<ArrayRef> = vec![Arc::new(StringArray::from_iter_values(keys))];
    if let (Some(s), true) = (slides, key != "slide_id") {
        fields.push(Field::new("slide_id", DataType::Utf8, false));
        cols.push(Arc::new(StringArray::from_iter_values(s)));
    }
    if let Some(pl) = places {
        for (name, f) in [("x", (|p: &PatchPlace| p.x) as fn(&PatchPlace) -> u32), ("y", |p| p.y), ("width", |p| p.width), ("height", |p| p.height)] {
            fields.push(Field::new(name, DataType::UInt32, false));
            cols.push(Arc::new(UInt32Array::from_iter_values(pl.iter().map(f))));
        }
    }
    for (c, class) in classes.iter().enumerate() {
        fields.push(Field::new(format!("p_{class}"), DataType::Float64, false));
        cols.push(Arc::new(Float64Array::from_iter_values(p.column(c).iter().copied())));
    }
    if let Some(m) = mil {
        for (c, class) in classes.iter().enumerate() {
            fields.push(Field::new(format!("mil_p_{class}"), DataType::Float64, false));
            cols.push(Arc::new(Float64Array::from_iter_values(m.column(c).iter().copied())));
        }
    }
    let schema = Arc::new(Schema::new(fields));
    let batch = RecordBatch::try_new(schema.clone(), cols).map_err(|e| ProbeError::file(out, e))?;
    let (atomic, file) = AtomicFile::create(out).map_err(|e| ProbeError::file(out, e))?;
    let mut w = parquet::arrow::ArrowWriter::try_new(file, schema, None).map_err(|e| ProbeError::file(out, e))?;
    w.write(&batch).map_err(|e| ProbeError::file(out, e))?;
    w.close().map_err(|e| ProbeError::file(out, e))?;
    atomic.commit().map(|_| ()).map_err(|e| ProbeError::file(out, e))
}

/// File-name-safe text: letters, digits, `-`, `_`, `.`; others as `_`.
fn tame(s: &str) -> String {
    s.chars().map(|c| if c.is_ascii_alphanumeric() || "-_.".contains(c) { c } else { '_' }).take(80).collect()
}

/// What the maps show: each row's class probabilities, its MIL attention, the classes drawn.
struct Maps<'a> {
    per_row: &'a Array2<f64>,
    attention: Option<&'a [f32]>,
    shown: &'a [usize],
}

fn draw(probe: &SavedProbe, rows: &EmbeddingRows, places: &[PatchPlace], maps: &Maps<'_>, out: &Path, opts: &PredictOptions) -> ProbeResult<Vec<PathBuf>> {
    let Maps { per_row, attention, shown } = *maps;
    let stem = out.file_stem().map(|s| s.to_string_lossy().to_string()).unwrap_or_default();
    let dir = out.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new("."));
    let mut files = Vec::new();
    // One picture set per slide: by slide_id when the files say, else per file.
    let mut slides: BTreeMap<String, Vec<usize>> = BTreeMap::new();
    for (f, range) in rows.file_rows.iter().enumerate() {
        for i in range.clone() {
            let id = rows.slides.as_ref().map_or_else(|| rows.files[f].file_stem().unwrap_or_default().to_string_lossy().to_string(), |s| s[i].clone());
            slides.entry(id).or_default().push(i);
        }
    }
    let file_of = |i: usize| rows.file_rows.iter().position(|r| r.contains(&i)).unwrap_or(0);
    for (slide, members) in slides {
        if let Some(&i) = members.iter().find(|&&i| places[i].width == 0 || places[i].height == 0) {
            return Err(ProbeError::data(
                &rows.files[file_of(i)],
                format!("row {i} ({}) has a patch of width or height 0; the x, y, width, height columns must describe the patch", rows.keys[i]),
            ));
        }
        let size = places[members[0]].width;
        let cols = members.iter().map(|&i| (places[i].x / size).saturating_add(1)).max().unwrap_or(1);
        let rws = members.iter().map(|&i| (places[i].y / size).saturating_add(1)).max().unwrap_or(1);
        let cell = (1024 / cols.max(rws)).clamp(2, 32);
        let grid = |i: usize| (places[i].x / size, places[i].y / size);
        // Pictures of grids wider than 8,192 cells (patch sizes that do not match the
        // coordinates) are left out; the GeoJSON below still places every patch.
        let drawable = cols.max(rws) <= 8192;
        let mut picture = |values: &[f32], name: String| -> ProbeResult<()> {
            if drawable {
                let cells: Vec<(u32, u32, f32)> = members.iter().zip(values).map(|(&i, &v)| (grid(i).0, grid(i).1, v)).collect();
                let img = render_value_map(cols, rws, &cells, cell);
                let path = dir.join(format!("{stem}-{}-{name}.png", tame(&slide)));
                crate::output::atomic::write_png(&path, img.width, img.height, &img.data).map_err(|e| ProbeError::file(&path, e))?;
                files.push(path);
            }
            Ok(())
        };
        for &c in shown {
            let values: Vec<f32> = members.iter().map(|&i| per_row[[i, c]] as f32).collect();
            picture(&values, format!("p_{}", tame(&probe.classes[c])))?;
        }
        if let Some(a) = attention {
            let values: Vec<f32> = members.iter().map(|&i| a[i]).collect();
            let max = values.iter().copied().fold(0f32, f32::max).max(f32::MIN_POSITIVE);
            picture(&values.iter().map(|v| v / max).collect::<Vec<_>>(), "attention".to_string())?;
        }
        let clusters = if opts.k > 0 && members.len() >= opts.k {
            Some(
                crate::maps::kmeans(&rows.bag(&members), rows.dim, opts.k, opts.seed)
                    .map_err(|e| ProbeError::Fit { what: "k-means".into(), problem: e.to_string() })?,
            )
        } else {
            None
        };
        let ds = rows.downsample.get(&rows.files[file_of(members[0])]).copied().unwrap_or(1.0);
        let features: Vec<_> = members
            .iter()
            .enumerate()
            .map(|(j, &i)| {
                let p = places[i];
                let (x0, y0) = (f64::from(p.x) * ds, f64::from(p.y) * ds);
                let (x1, y1) = (x0 + f64::from(p.width) * ds, y0 + f64::from(p.height) * ds);
                let best = argmax(per_row.row(i));
                let mut measurements = serde_json::Map::new();
                for (c, class) in probe.classes.iter().enumerate() {
                    measurements.insert(format!("p_{class}"), json!(per_row[[i, c]]));
                }
                if let Some(a) = attention {
                    measurements.insert("attention".into(), json!(a[i]));
                }
                if let Some(k) = &clusters {
                    measurements.insert("cluster".into(), json!(k[j]));
                }
                let colour = PALETTE[best % PALETTE.len()];
                json!({
                    "type": "Feature",
                    "geometry": {"type": "Polygon", "coordinates": [[[x0, y0], [x1, y0], [x1, y1], [x0, y1], [x0, y0]]]},
                    "properties": {
                        "objectType": "detection",
                        "classification": {"name": probe.classes[best], "color": colour},
                        "measurements": measurements,
                    }
                })
            })
            .collect();
        let path = dir.join(format!("{stem}-{}.geojson", tame(&slide)));
        let doc = json!({"type": "FeatureCollection", "features": features});
        std::fs::write(&path, serde_json::to_string(&doc).expect("json")).map_err(|e| ProbeError::file(&path, e))?;
        files.push(path);
    }
    Ok(files)
}
