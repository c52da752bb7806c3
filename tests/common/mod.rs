//! Helpers shared by the facade's test files.
#![allow(dead_code)] // each test file uses some of them

use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use std::collections::HashMap;
use std::path::{Path, PathBuf};

/// An example binary, as `cargo test` builds it beside the test:
/// target/<profile>/deps/<test> → target/<profile>/examples/<name>.
pub fn example(name: &str) -> PathBuf {
    let exe = std::env::current_exe().unwrap();
    let path = exe.parent().unwrap().parent().unwrap().join("examples").join(name);
    assert!(path.exists(), "{} not built (cargo test builds the examples)", path.display());
    path
}

/// The repository root (where the examples are run from, as the README runs them).
pub fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// The Parquet file's key-value metadata (what DuckDB and pyarrow show as the file's metadata).
pub fn key_value_metadata<T: parquet::file::reader::ChunkReader>(builder: &ParquetRecordBatchReaderBuilder<T>) -> HashMap<String, String> {
    builder
        .metadata()
        .file_metadata()
        .key_value_metadata()
        .map(|kv| kv.iter().map(|kv| (kv.key.clone(), kv.value.clone().unwrap_or_default())).collect())
        .unwrap_or_default()
}
