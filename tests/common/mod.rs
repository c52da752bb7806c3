//! Helpers shared by the facade's test files.

use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use std::collections::HashMap;

/// The Parquet file's key-value metadata (what DuckDB and pyarrow show as the file's metadata).
pub fn key_value_metadata<T: parquet::file::reader::ChunkReader>(builder: &ParquetRecordBatchReaderBuilder<T>) -> HashMap<String, String> {
    builder
        .metadata()
        .file_metadata()
        .key_value_metadata()
        .map(|kv| kv.iter().map(|kv| (kv.key.clone(), kv.value.clone().unwrap_or_default())).collect())
        .unwrap_or_default()
}
