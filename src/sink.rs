//! The Parquet sink: one row per embedded input, written with arrow-rs: the source's key
//! columns, then `embedding` (`FixedSizeList<Float32, D>`; for a token map its shape is in the
//! field's metadata under `shape`, e.g. `[8, 8, 1376]`).
//!
//! Slide schema (see the README): `slide_id` Utf8 (SeriesInstanceUID), `level` UInt32, `mpp` Float64
//! (NaN when the slide gives no spacing), `x`, `y`, `width`, `height` UInt32 (level pixels),
//! `tissue_fraction` Float32, `embedding` FixedSizeList<Float32, D>. File metadata: `model_id`,
//! `weights_sha256` (or `untrained`), `library_version`, `input_scaling`, and `warning` when the
//! model is untrained.

use crate::atomic::AtomicFile;
use crate::error::{PipelineError, Result};
use arrow_array::{ArrayRef, FixedSizeListArray, Float32Array, Float64Array, RecordBatch, StringArray, UInt32Array};
use arrow_schema::{DataType, Field, Schema};
use parquet::arrow::ArrowWriter;
use parquet::basic::Compression;
use parquet::file::metadata::KeyValue;
use parquet::file::properties::WriterProperties;
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// Where one embedding came from.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct PatchRecord {
    /// Left edge in level pixels.
    pub x: u32,
    /// Top edge in level pixels.
    pub y: u32,
    /// Width in level pixels.
    pub width: u32,
    /// Height in level pixels.
    pub height: u32,
    /// Tissue fraction of the patch (1.0 when tissue detection is off).
    pub tissue_fraction: f32,
}

/// The provenance every embeddings file carries in its metadata: `model_id`, `weights_sha256`
/// (or `untrained`), `library_version`, `input_scaling`, and `warning` for untrained models.
pub fn provenance(encoder: &dyn haidef_wsi_encoders::Encoder) -> HashMap<String, String> {
    let mut meta = HashMap::from([
        ("model_id".to_string(), encoder.model_id().to_string()),
        ("weights_sha256".to_string(), encoder.weights_id().to_string()),
        ("library_version".to_string(), format!("haidef-wsi {}", env!("CARGO_PKG_VERSION"))),
        ("input_scaling".to_string(), encoder.input_spec().describe()),
    ]);
    if !encoder.is_trained() {
        meta.insert("warning".to_string(), haidef_wsi_encoders::UNTRAINED_WARNING.to_string());
    }
    meta
}

/// The slide's key columns.
pub fn slide_fields() -> Vec<Field> {
    vec![
        Field::new("slide_id", DataType::Utf8, false),
        Field::new("level", DataType::UInt32, false),
        Field::new("mpp", DataType::Float64, false),
        Field::new("x", DataType::UInt32, false),
        Field::new("y", DataType::UInt32, false),
        Field::new("width", DataType::UInt32, false),
        Field::new("height", DataType::UInt32, false),
        Field::new("tissue_fraction", DataType::Float32, false),
    ]
}

/// The Arrow schema of an embeddings file: `keys`, then `embedding` of `shape` (one number for
/// a vector; a token map's shape goes into the field's metadata), with file metadata `meta`.
pub fn schema(keys: Vec<Field>, shape: &[usize], meta: HashMap<String, String>) -> Schema {
    let item = Arc::new(Field::new("item", DataType::Float32, false));
    let dim: usize = shape.iter().product();
    let mut embedding = Field::new("embedding", DataType::FixedSizeList(item, dim as i32), false);
    if shape.len() > 1 {
        embedding = embedding.with_metadata(HashMap::from([("shape".to_string(), format!("{shape:?}"))]));
    }
    Schema::new(keys.into_iter().chain([embedding]).collect::<Vec<_>>()).with_metadata(meta)
}

/// Where the slide's rows come from: the same for every row.
struct SlideKeys {
    slide_id: String,
    level: u32,
    mpp: f64,
}

/// Bytes of a Parquet row group. The writer holds a row group in memory until it is full;
/// parquet's default (1,048,576 rows, no byte limit) would hold a whole slide's embeddings a
/// second time (they are also kept for k-means): 154 MB for 100,000 Path Foundation patches
/// (docs/FAULTS.md).
const ROW_GROUP_BYTES: usize = 64 << 20;

/// Writes embedding rows to `<path>.partial`, renamed to `path` by [`ParquetSink::finish`].
pub struct ParquetSink {
    path: PathBuf,
    atomic: Option<AtomicFile>,
    writer: Option<ArrowWriter<std::fs::File>>,
    schema: Arc<Schema>,
    slide: Option<SlideKeys>,
    /// Score columns of a slide sink.
    scores: usize,
    dim: usize,
    rows: usize,
}

impl ParquetSink {
    /// Opens a sink for a slide's patches (the slide schema above).
    pub fn create(path: &Path, slide_id: &str, level: u32, mpp: Option<f64>, dim: usize, meta: HashMap<String, String>) -> Result<Self> {
        Self::create_scored(path, slide_id, level, mpp, dim, meta, &[])
    }

    /// Like [`ParquetSink::create`], with one Float32 score column per name in `scores` (after
    /// `tissue_fraction`, before `embedding`), filled by [`ParquetSink::write_scored`].
    pub fn create_scored(path: &Path, slide_id: &str, level: u32, mpp: Option<f64>, dim: usize, meta: HashMap<String, String>, scores: &[String]) -> Result<Self> {
        let mut fields = slide_fields();
        fields.extend(scores.iter().map(|s| Field::new(s, DataType::Float32, false)));
        let mut sink = Self::create_with(path, fields, &[dim], meta)?;
        sink.scores = scores.len();
        sink.slide = Some(SlideKeys { slide_id: slide_id.to_string(), level, mpp: mpp.unwrap_or(f64::NAN) });
        Ok(sink)
    }

    /// Opens a sink with any key columns and an embedding of `shape`.
    pub fn create_with(path: &Path, keys: Vec<Field>, shape: &[usize], meta: HashMap<String, String>) -> Result<Self> {
        let (atomic, file) = AtomicFile::create(path)?;
        // The metadata goes both into the Arrow schema and into Parquet's own key-value metadata,
        // so that readers that do not decode the Arrow schema (DuckDB, parquet-tools) see it.
        let kv: Vec<KeyValue> = meta.iter().map(|(k, v)| KeyValue::new(k.clone(), v.clone())).collect();
        let schema = Arc::new(schema(keys, shape, meta));
        let props = WriterProperties::builder()
            .set_compression(Compression::SNAPPY)
            .set_key_value_metadata(Some(kv))
            .set_max_row_group_bytes(Some(ROW_GROUP_BYTES))
            .build();
        let writer = ArrowWriter::try_new(file, schema.clone(), Some(props)).map_err(|e| PipelineError::output(path, e))?;
        Ok(ParquetSink {
            path: path.to_path_buf(),
            atomic: Some(atomic),
            writer: Some(writer),
            schema,
            slide: None,
            scores: 0,
            dim: shape.iter().product(),
            rows: 0,
        })
    }

    /// Appends a slide's rows: `embeddings` holds `records.len() * dim` floats.
    pub fn write(&mut self, records: &[PatchRecord], embeddings: &[f32]) -> Result<()> {
        self.write_scored(records, embeddings, &[])
    }

    /// Like [`ParquetSink::write`], with the score columns' values: one vector per score
    /// column, one value per record.
    pub fn write_scored(&mut self, records: &[PatchRecord], embeddings: &[f32], scores: &[Vec<f32>]) -> Result<()> {
        let n = records.len();
        if scores.len() != self.scores || scores.iter().any(|s| s.len() != n) {
            return Err(PipelineError::Options(format!("internal: {} score columns given for {} declared, or not one value per row", scores.len(), self.scores)));
        }
        let Some(slide) = &self.slide else {
            return Err(PipelineError::Options("internal: ParquetSink::write needs a slide sink (ParquetSink::create)".into()));
        };
        let u32s = |f: fn(&PatchRecord) -> u32| Arc::new(UInt32Array::from_iter_values(records.iter().map(f))) as ArrayRef;
        let keys: Vec<ArrayRef> = vec![
            Arc::new(StringArray::from_iter_values(std::iter::repeat_n(&slide.slide_id, n))),
            Arc::new(UInt32Array::from_iter_values(std::iter::repeat_n(slide.level, n))),
            Arc::new(Float64Array::from_iter_values(std::iter::repeat_n(slide.mpp, n))),
            u32s(|r| r.x),
            u32s(|r| r.y),
            u32s(|r| r.width),
            u32s(|r| r.height),
            Arc::new(Float32Array::from_iter_values(records.iter().map(|r| r.tissue_fraction))),
        ];
        let keys = keys.into_iter().chain(scores.iter().map(|s| Arc::new(Float32Array::from(s.clone())) as ArrayRef)).collect();
        self.write_columns(keys, embeddings)
    }

    /// Appends rows given as key columns (in the schema's order, all of one length `n`) and
    /// `n * dim` embedding floats.
    pub fn write_columns(&mut self, mut keys: Vec<ArrayRef>, embeddings: &[f32]) -> Result<()> {
        let n = keys.first().map_or(0, |k| k.len());
        if embeddings.len() != n * self.dim {
            return Err(PipelineError::Options(format!(
                "internal: {} embedding values for {n} rows of dimension {}",
                embeddings.len(),
                self.dim
            )));
        }
        let item = Arc::new(Field::new("item", DataType::Float32, false));
        keys.push(Arc::new(
            FixedSizeListArray::try_new(item, self.dim as i32, Arc::new(Float32Array::from(embeddings.to_vec())), None)
                .map_err(|e| PipelineError::output(&self.path, e))?,
        ));
        let batch = RecordBatch::try_new(self.schema.clone(), keys).map_err(|e| PipelineError::output(&self.path, e))?;
        self.writer.as_mut().expect("open").write(&batch).map_err(|e| PipelineError::output(&self.path, e))?;
        self.rows += n;
        Ok(())
    }

    /// Adds a key-value pair to the Parquet file's metadata (for what is known only at the end,
    /// such as the inputs that failed). The Arrow schema's metadata was fixed at creation.
    pub fn append_metadata(&mut self, key: &str, value: &str) {
        self.writer.as_mut().expect("open").append_key_value_metadata(KeyValue::new(key.to_string(), value.to_string()));
    }

    /// Rows written so far.
    pub fn rows(&self) -> usize {
        self.rows
    }

    /// Closes the file and gives it its final name.
    pub fn finish(mut self) -> Result<PathBuf> {
        self.writer.take().expect("open").close().map_err(|e| PipelineError::output(&self.path, e))?;
        self.atomic.take().expect("open").commit()
    }
}
