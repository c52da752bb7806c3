//! Helpers shared by the facade's test files.
#![allow(dead_code)] // each test file uses some of them

use arrow_array::{Array, FixedSizeListArray, Float32Array, UInt32Array};
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

/// (x, y, embedding) of every row of a run's Parquet file (`dir/embeddings.parquet`), in file
/// order.
pub fn read_embeddings(dir: &Path) -> Vec<(u32, u32, Vec<f32>)> {
    read_embeddings_file(&dir.join("embeddings.parquet"))
}

/// (x, y, embedding) of every row of one Parquet file of embeddings, in file order.
pub fn read_embeddings_file(file: &Path) -> Vec<(u32, u32, Vec<f32>)> {
    let f = std::fs::File::open(file).unwrap_or_else(|e| panic!("{}: {e}", file.display()));
    let mut rows = Vec::new();
    for b in ParquetRecordBatchReaderBuilder::try_new(f).unwrap().build().unwrap() {
        let b = b.unwrap();
        let xs = b.column_by_name("x").unwrap().as_any().downcast_ref::<UInt32Array>().unwrap().clone();
        let ys = b.column_by_name("y").unwrap().as_any().downcast_ref::<UInt32Array>().unwrap().clone();
        let emb = b.column_by_name("embedding").unwrap().as_any().downcast_ref::<FixedSizeListArray>().unwrap().clone();
        for i in 0..b.num_rows() {
            let e = emb.value(i);
            rows.push((xs.value(i), ys.value(i), e.as_any().downcast_ref::<Float32Array>().unwrap().values().to_vec()));
        }
    }
    rows
}
