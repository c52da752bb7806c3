//! The Parquet sink: one row per embedded input, written with arrow-rs: the modality's key
//! columns (and any score columns), then `embedding` (`FixedSizeList<Float32, D>`; for a token
//! map its shape is in the field's metadata under `shape`, e.g. `[8, 8, 1376]`). It knows no
//! modality: each declares its own key columns (the README lists them). File metadata:
//! [`provenance`] (`model_id`, `weights_sha256` or `untrained`, `library_version`,
//! `input_scaling`, and `warning` when the model is untrained) and what the job adds.

use crate::error::{PipelineError, Result};
use crate::output::atomic::AtomicFile;
use arrow_array::{ArrayRef, FixedSizeListArray, Float32Array, RecordBatch};
use arrow_schema::{DataType, Field, Schema};
use parquet::arrow::ArrowWriter;
use parquet::basic::Compression;
use parquet::file::metadata::KeyValue;
use parquet::file::properties::WriterProperties;
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

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

/// The Arrow schema of an embeddings file: `keys`, then `embedding` of `shape` (one number for
/// a vector; a token map's shape goes into the field's metadata), with file metadata `meta`.
fn schema(keys: Vec<Field>, shape: &[usize], meta: HashMap<String, String>) -> Schema {
    let item = Arc::new(Field::new("item", DataType::Float32, false));
    let dim: usize = shape.iter().product();
    let mut embedding = Field::new("embedding", DataType::FixedSizeList(item, dim as i32), false);
    if shape.len() > 1 {
        embedding = embedding.with_metadata(HashMap::from([("shape".to_string(), format!("{shape:?}"))]));
    }
    Schema::new(keys.into_iter().chain([embedding]).collect::<Vec<_>>()).with_metadata(meta)
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
    dim: usize,
    rows: usize,
}

impl ParquetSink {
    /// Opens a sink with any key columns and an embedding of `shape`.
    pub fn create(path: &Path, keys: Vec<Field>, shape: &[usize], meta: HashMap<String, String>) -> Result<Self> {
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
        Ok(ParquetSink { path: path.to_path_buf(), atomic: Some(atomic), writer: Some(writer), schema, dim: shape.iter().product(), rows: 0 })
    }

    /// Appends rows given as key columns (in the schema's order, all of one length `n`) and
    /// `n * dim` embedding floats.
    pub fn write(&mut self, mut keys: Vec<ArrayRef>, embeddings: &[f32]) -> Result<()> {
        let n = keys.first().map_or(0, |k| k.len());
        if embeddings.len() != n * self.dim {
            return Err(PipelineError::Options(format!("internal: {} embedding values for {n} rows of dimension {}", embeddings.len(), self.dim)));
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
