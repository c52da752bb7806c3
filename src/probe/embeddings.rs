//! Embedding rows read back for classifiers: one Parquet file or a folder of them (a cohort
//! dataset's `embeddings/slide_id=…/part-0.parquet`, or anyone's), a key column and an
//! embedding column (`FixedSizeList` or `List` of `Float32`/`Float64`). Files from this library
//! carry provenance metadata (`model_id`, `weights_sha256`): files of different models in one
//! dataset are refused; files without it are taken as they are.

use crate::probe::error::{ProbeError, ProbeResult};
use arrow_array::cast::AsArray;
use arrow_array::types::{Float32Type, Float64Type, Int32Type, Int64Type, UInt32Type, UInt64Type};
use arrow_array::{Array, ArrayRef, RecordBatch};
use arrow_schema::DataType;
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use std::collections::HashMap;
use std::path::{Path, PathBuf};

/// Where a slide patch lies: its rectangle in the embedded level's pixels (columns `x`, `y`,
/// `width`, `height` of the slide job's files).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct PatchPlace {
    /// Left edge.
    pub x: u32,
    /// Top edge.
    pub y: u32,
    /// Width.
    pub width: u32,
    /// Height.
    pub height: u32,
}

/// Embedding rows with their keys, read from one or more Parquet files.
#[derive(Debug, Clone)]
pub struct EmbeddingRows {
    /// The key column's name.
    pub key_column: String,
    /// Each row's key, as text.
    pub keys: Vec<String>,
    /// Width of an embedding.
    pub dim: usize,
    /// The embeddings, row after row (`keys.len() × dim`).
    pub values: Vec<f32>,
    /// Each row's patch rectangle, when every file has `x`, `y`, `width` and `height` columns.
    pub places: Option<Vec<PatchPlace>>,
    /// Each row's slide (`slide_id` column), when every file has one.
    pub slides: Option<Vec<String>>,
    /// The model that made the embeddings (`model_id` metadata), when the files say.
    pub model_id: Option<String>,
    /// The files read, in order.
    pub files: Vec<PathBuf>,
    /// Per file: the metadata a slide file carries for drawing (`level_downsample`).
    pub downsample: HashMap<PathBuf, f64>,
    /// Row ranges per file, in `files` order.
    pub file_rows: Vec<std::ops::Range<usize>>,
}

impl EmbeddingRows {
    /// Number of rows.
    pub fn len(&self) -> usize {
        self.keys.len()
    }

    /// Whether there are no rows.
    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }

    /// Row `i`'s embedding.
    pub fn row(&self, i: usize) -> &[f32] {
        &self.values[i * self.dim..(i + 1) * self.dim]
    }

    /// The rows `members`, in order, as one f64 matrix (`members.len() × dim`).
    pub fn matrix(&self, members: &[usize]) -> ndarray::Array2<f64> {
        ndarray::Array2::from_shape_fn((members.len(), self.dim), |(e, j)| f64::from(self.values[members[e] * self.dim + j]))
    }

    /// The mean of the rows `members` (summed, then divided by their number), in f64: a
    /// slide's pooled embedding, the same in training and prediction.
    pub fn mean(&self, members: &[usize]) -> ndarray::Array1<f64> {
        let mut sum = ndarray::Array1::zeros(self.dim);
        for &r in members {
            sum.iter_mut().zip(self.row(r)).for_each(|(d, &s): (&mut f64, &f32)| *d += f64::from(s));
        }
        sum / members.len() as f64
    }

    /// The rows `members` one after another (a MIL bag, k-means input).
    pub fn bag(&self, members: &[usize]) -> Vec<f32> {
        members.iter().flat_map(|&r| self.row(r).iter().copied()).collect()
    }
}

/// The Parquet files under `path` (the file itself, or every `*.parquet` below a folder, sorted;
/// staging folders `.partial-*` and hidden files skipped).
pub fn parquet_files(path: &Path) -> ProbeResult<Vec<PathBuf>> {
    let meta = std::fs::metadata(path).map_err(|e| ProbeError::file(path, e))?;
    if meta.is_file() {
        return Ok(vec![path.to_path_buf()]);
    }
    let mut out = Vec::new();
    let mut stack = vec![path.to_path_buf()];
    while let Some(dir) = stack.pop() {
        let entries = std::fs::read_dir(&dir).map_err(|e| ProbeError::file(&dir, e))?;
        for entry in entries {
            let entry = entry.map_err(|e| ProbeError::file(&dir, e))?;
            let p = entry.path();
            let name = entry.file_name().to_string_lossy().to_string();
            if name.starts_with('.') {
                continue;
            }
            let kind = entry.file_type().map_err(|e| ProbeError::file(&p, e))?;
            if kind.is_dir() {
                stack.push(p);
            } else if name.ends_with(".parquet") {
                out.push(p);
            }
        }
    }
    out.sort();
    if out.is_empty() {
        return Err(ProbeError::data(path, "no .parquet files in this folder; give an embeddings file or a cohort dataset folder"));
    }
    Ok(out)
}

/// Reads every row of the Parquet file(s) at `path`: `key_column` as text and
/// `embedding_column` as numbers. Refuses NaN or infinite values, files whose embeddings differ
/// in width, and files whose provenance names different models or weights.
pub fn read_embeddings(path: &Path, key_column: &str, embedding_column: &str) -> ProbeResult<EmbeddingRows> {
    let files = parquet_files(path)?;
    let mut rows = EmbeddingRows {
        key_column: key_column.to_string(),
        keys: Vec::new(),
        dim: 0,
        values: Vec::new(),
        places: Some(Vec::new()),
        slides: Some(Vec::new()),
        model_id: None,
        files: files.clone(),
        downsample: HashMap::new(),
        file_rows: Vec::new(),
    };
    // The first file's provenance, to compare the others with.
    let mut first: Option<(PathBuf, Option<String>, Option<String>)> = None;
    for file in &files {
        let start = rows.keys.len();
        let f = std::fs::File::open(file).map_err(|e| ProbeError::file(file, e))?;
        let builder = ParquetRecordBatchReaderBuilder::try_new(f).map_err(|e| ProbeError::data(file, format!("not a readable Parquet file: {e}")))?;
        let meta = builder.schema().metadata().clone();
        let (model, weights) = (meta.get("model_id").cloned(), meta.get("weights_sha256").cloned());
        match &first {
            None if model.is_some() => first = Some((file.clone(), model.clone(), weights.clone())),
            Some((f0, m0, w0)) if model.is_some() && (model != *m0 || weights != *w0) => {
                return Err(ProbeError::data(
                    file,
                    format!(
                        "embeddings of model {} (weights {}), but {} holds model {} (weights {}); embeddings of different models cannot be mixed in one classifier",
                        model.as_deref().unwrap_or("?"),
                        weights.as_deref().unwrap_or("?"),
                        f0.display(),
                        m0.as_deref().unwrap_or("?"),
                        w0.as_deref().unwrap_or("?")
                    ),
                ));
            }
            _ => {}
        }
        if rows.model_id.is_none() {
            rows.model_id = model;
        }
        if let Some(d) = meta.get("level_downsample").and_then(|v| v.parse::<f64>().ok()) {
            rows.downsample.insert(file.clone(), d);
        }
        let schema = builder.schema().clone();
        let names: Vec<String> = schema.fields().iter().map(|f| f.name().clone()).collect();
        for wanted in [key_column, embedding_column] {
            if schema.field_with_name(wanted).is_err() {
                let hint = if wanted == embedding_column { " (--embedding-column chooses another)" } else { " (--key chooses another)" };
                return Err(ProbeError::data(file, format!("no column '{wanted}'{hint}; the columns are: {}", names.join(", "))));
            }
        }
        let reader = builder.build().map_err(|e| ProbeError::data(file, e.to_string()))?;
        for batch in reader {
            let batch = batch.map_err(|e| ProbeError::data(file, format!("cannot be read: {e}")))?;
            append(&mut rows, file, start, &batch, key_column, embedding_column)?;
        }
        rows.file_rows.push(start..rows.keys.len());
    }
    if rows.keys.is_empty() {
        return Err(ProbeError::data(path, "no embedding rows"));
    }
    Ok(rows)
}

/// Appends `batch`; `file_start` is where the file's rows begin (error messages count rows
/// from the start of the file).
fn append(rows: &mut EmbeddingRows, file: &Path, file_start: usize, batch: &RecordBatch, key_column: &str, embedding_column: &str) -> ProbeResult<()> {
    let n = batch.num_rows();
    let key = batch.column_by_name(key_column).expect("checked above");
    let keys = as_text(key).ok_or_else(|| {
        ProbeError::data(file, format!("column '{key_column}' is {}, not text or integers; choose a key column of text or integers", key.data_type()))
    })?;
    let first_row = rows.keys.len() - file_start;
    let emb = batch.column_by_name(embedding_column).expect("checked above");
    let (dim, values) = numbers(emb).ok_or_else(|| {
        ProbeError::data(
            file,
            format!("column '{embedding_column}' is {}; an embedding column is a fixed-size list or list of float32 or float64", emb.data_type()),
        )
    })?;
    let dim = match dim {
        Some(d) => d,
        None => lengths_agree(emb, file, embedding_column, &keys, first_row)?,
    };
    if dim == 0 {
        return Err(ProbeError::data(file, format!("column '{embedding_column}' holds empty embeddings")));
    }
    if rows.dim == 0 {
        rows.dim = dim;
    } else if rows.dim != dim {
        return Err(ProbeError::data(
            file,
            format!("embeddings of width {dim}, but the files before it have width {}; embeddings of different models or settings cannot be mixed", rows.dim),
        ));
    }
    if let Some(i) = values.iter().position(|v| !v.is_finite()) {
        let row = i / dim;
        return Err(ProbeError::data(
            file,
            format!("row {} ({key_column} {}) has a {} in its embedding (dimension {}); re-embed that input", first_row + row, keys[row], values[i], i % dim),
        ));
    }
    rows.values.extend_from_slice(&values);
    rows.keys.extend(keys);
    let place_cols: Option<Vec<_>> =
        ["x", "y", "width", "height"].iter().map(|c| batch.column_by_name(c).and_then(|a| a.as_primitive_opt::<UInt32Type>()).cloned()).collect();
    match (place_cols, rows.places.as_mut()) {
        (Some(cols), Some(places)) => {
            places.extend((0..n).map(|i| PatchPlace { x: cols[0].value(i), y: cols[1].value(i), width: cols[2].value(i), height: cols[3].value(i) }))
        }
        _ => rows.places = None,
    }
    match (batch.column_by_name("slide_id").and_then(as_text), rows.slides.as_mut()) {
        (Some(ids), Some(slides)) => slides.extend(ids),
        _ => rows.slides = None,
    }
    Ok(())
}

/// A column of text or integers as strings (nulls as empty strings).
fn as_text(a: &ArrayRef) -> Option<Vec<String>> {
    let n = a.len();
    let text = |f: &dyn Fn(usize) -> String| (0..n).map(|i| if a.is_null(i) { String::new() } else { f(i) }).collect();
    Some(match a.data_type() {
        DataType::Utf8 => text(&|i| a.as_string::<i32>().value(i).to_string()),
        DataType::LargeUtf8 => text(&|i| a.as_string::<i64>().value(i).to_string()),
        DataType::Utf8View => text(&|i| a.as_string_view().value(i).to_string()),
        DataType::Int32 => text(&|i| a.as_primitive::<Int32Type>().value(i).to_string()),
        DataType::Int64 => text(&|i| a.as_primitive::<Int64Type>().value(i).to_string()),
        DataType::UInt32 => text(&|i| a.as_primitive::<UInt32Type>().value(i).to_string()),
        DataType::UInt64 => text(&|i| a.as_primitive::<UInt64Type>().value(i).to_string()),
        _ => return None,
    })
}

/// The flat values of a list column as f32, with the fixed width when the type has one.
fn numbers(a: &ArrayRef) -> Option<(Option<usize>, Vec<f32>)> {
    let (fixed, inner): (Option<usize>, ArrayRef) = match a.data_type() {
        DataType::FixedSizeList(_, d) => {
            let l = a.as_fixed_size_list();
            (Some(*d as usize), sliced_values_fixed(l))
        }
        DataType::List(_) => {
            let l = a.as_list::<i32>();
            let offsets = l.value_offsets();
            (None, l.values().slice(offsets[0] as usize, (offsets[l.len()] - offsets[0]) as usize))
        }
        DataType::LargeList(_) => {
            let l = a.as_list::<i64>();
            let offsets = l.value_offsets();
            (None, l.values().slice(offsets[0] as usize, (offsets[l.len()] - offsets[0]) as usize))
        }
        _ => return None,
    };
    let values = match inner.data_type() {
        DataType::Float32 => inner.as_primitive::<Float32Type>().values().to_vec(),
        DataType::Float64 => inner.as_primitive::<Float64Type>().values().iter().map(|&v| v as f32).collect(),
        _ => return None,
    };
    if inner.null_count() > 0 {
        // Nulls inside an embedding read as NaN, which the caller refuses with the row named.
        let mut v = values;
        (0..inner.len()).filter(|&i| inner.is_null(i)).for_each(|i| v[i] = f32::NAN);
        return Some((fixed, v));
    }
    Some((fixed, values))
}

fn sliced_values_fixed(l: &arrow_array::FixedSizeListArray) -> ArrayRef {
    let d = l.value_length() as usize;
    l.values().slice(l.offset() * d, l.len() * d)
}

/// The one length every list in a `List` column has (an error naming the first row that
/// differs).
fn lengths_agree(a: &ArrayRef, file: &Path, column: &str, keys: &[String], first_row: usize) -> ProbeResult<usize> {
    let lens: Vec<usize> = match a.data_type() {
        DataType::List(_) => a.as_list::<i32>().value_offsets().windows(2).map(|w| (w[1] - w[0]) as usize).collect(),
        _ => a.as_list::<i64>().value_offsets().windows(2).map(|w| (w[1] - w[0]) as usize).collect(),
    };
    let first = lens.first().copied().unwrap_or(0);
    if let Some(i) = lens.iter().position(|&l| l != first) {
        return Err(ProbeError::data(
            file,
            format!(
                "column '{column}': row {} ({}) has {} numbers but row {first_row} has {first}; every embedding must have the same width",
                first_row + i,
                keys[i],
                lens[i]
            ),
        ));
    }
    Ok(first)
}
