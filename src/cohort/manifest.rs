//! The cohort manifest: one row per slide, as CSV (with a header) or Parquet. Columns: `path`
//! (a slide folder or file, or a DICOMweb series URL), optional `slide_id` and `label`; other
//! columns are ignored. Relative paths are relative to the manifest's own folder, so a job
//! finds its slides whatever folder it starts in.

use crate::error::{PipelineError, Result};
use std::collections::HashMap;
use std::path::{Path, PathBuf};

/// One slide of the cohort.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ManifestRow {
    /// Where the row is in the manifest: the CSV line (the header is line 1) or the Parquet
    /// row (counted from 1).
    pub line: usize,
    /// The `path` cell as written.
    pub path: String,
    /// The `slide_id` cell, if given (else the slide's SeriesInstanceUID is its id).
    pub slide_id: Option<String>,
    /// The `label` cell, if given.
    pub label: Option<String>,
}

impl ManifestRow {
    /// Whether the path is a DICOMweb URL.
    pub fn is_url(&self) -> bool {
        self.path.starts_with("http://") || self.path.starts_with("https://")
    }
}

/// A cohort manifest, checked: every row has a path, slide ids are usable as folder names and
/// no slide id or path appears twice.
#[derive(Debug, Clone)]
pub struct Manifest {
    /// The manifest file.
    pub file: PathBuf,
    /// Its rows, in file order.
    pub rows: Vec<ManifestRow>,
}

impl Manifest {
    /// Reads a `.csv` or `.parquet` manifest.
    pub fn open(file: &Path) -> Result<Manifest> {
        let bad = |problem: String| PipelineError::Input { path: file.display().to_string(), problem };
        let ext = file.extension().and_then(|e| e.to_str()).map(str::to_ascii_lowercase);
        let rows = match ext.as_deref() {
            Some("csv") => read_csv(file)?,
            Some("parquet") | Some("pq") => read_parquet(file)?,
            _ => return Err(bad("a cohort manifest is a .csv file (with a header row) or a .parquet file".into())),
        };
        if rows.is_empty() {
            return Err(bad("the manifest names no slides".into()));
        }
        let manifest = Manifest { file: file.to_path_buf(), rows };
        manifest.check()?;
        Ok(manifest)
    }

    /// Where a row's slide is: URLs as written, relative paths from the manifest's folder.
    pub fn location(&self, row: &ManifestRow) -> String {
        if row.is_url() || Path::new(&row.path).is_absolute() {
            return row.path.clone();
        }
        let base = self.file.parent().unwrap_or(Path::new(""));
        base.join(&row.path).display().to_string()
    }

    fn check(&self) -> Result<()> {
        let bad = |problem: String| PipelineError::Input { path: self.file.display().to_string(), problem };
        let mut ids: HashMap<&str, usize> = HashMap::new();
        let mut paths: HashMap<&str, usize> = HashMap::new();
        for row in &self.rows {
            if row.path.trim().is_empty() {
                return Err(bad(format!("line {}: the path is empty", row.line)));
            }
            if let Some(id) = &row.slide_id {
                check_slide_id(id).map_err(|p| bad(format!("line {}: slide_id {id:?}: {p}", row.line)))?;
                if let Some(first) = ids.insert(id, row.line) {
                    return Err(bad(format!("lines {first} and {}: slide_id {id:?} appears twice; each slide needs its own", row.line)));
                }
            }
            if let Some(first) = paths.insert(&row.path, row.line) {
                return Err(bad(format!("lines {first} and {}: the path {:?} appears twice; a slide is embedded once", row.line, row.path)));
            }
        }
        Ok(())
    }
}

/// A slide id names a folder of the dataset (`slide_id=<id>`) and files, and is read back as a
/// Hive partition value by pyarrow, DuckDB, polars and Spark: so it is 1–128 letters, digits,
/// `.`, `_` or `-`, starting with a letter or digit (no escaping that readers could undo
/// differently; DICOM UIDs qualify).
pub fn check_slide_id(id: &str) -> std::result::Result<(), String> {
    if id.is_empty() || id.len() > 128 {
        return Err("a slide id is 1 to 128 characters".into());
    }
    if !id.chars().next().is_some_and(|c| c.is_ascii_alphanumeric()) {
        return Err("a slide id starts with a letter or digit".into());
    }
    if let Some(c) = id.chars().find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'))) {
        return Err(format!("{c:?} cannot be in a slide id (use letters, digits, '.', '_' and '-')"));
    }
    Ok(())
}

fn cell(s: Option<&str>) -> Option<String> {
    s.map(str::trim).filter(|s| !s.is_empty()).map(str::to_string)
}

fn read_csv(file: &Path) -> Result<Vec<ManifestRow>> {
    let bad = |problem: String| PipelineError::Input { path: file.display().to_string(), problem };
    let mut reader = csv::ReaderBuilder::new().flexible(false).from_path(file).map_err(|e| bad(e.to_string()))?;
    let headers = reader.headers().map_err(|e| bad(e.to_string()))?.clone();
    let column = |name: &str| headers.iter().position(|h| h.trim().trim_start_matches('\u{feff}') == name);
    let path_col = column("path").ok_or_else(|| {
        bad(format!(
            "no `path` column in the header ({}); the manifest's columns are path, slide_id (optional), label (optional)",
            headers.iter().collect::<Vec<_>>().join(", ")
        ))
    })?;
    let (id_col, label_col) = (column("slide_id"), column("label"));
    let mut rows = Vec::new();
    for record in reader.records() {
        let record = record.map_err(|e| bad(e.to_string()))?;
        let line = record.position().map_or(0, |p| p.line() as usize);
        rows.push(ManifestRow {
            line,
            path: record.get(path_col).unwrap_or("").trim().to_string(),
            slide_id: id_col.and_then(|c| cell(record.get(c))),
            label: label_col.and_then(|c| cell(record.get(c))),
        });
    }
    Ok(rows)
}

fn read_parquet(file: &Path) -> Result<Vec<ManifestRow>> {
    use arrow_array::cast::AsArray;
    use arrow_array::types::{Int32Type, Int64Type};
    use arrow_array::Array;
    use arrow_schema::DataType;
    use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
    let bad = |problem: String| PipelineError::Input { path: file.display().to_string(), problem };
    let f = std::fs::File::open(file).map_err(|e| bad(e.to_string()))?;
    let reader =
        ParquetRecordBatchReaderBuilder::try_new(f).map_err(|e| bad(format!("not a readable Parquet file: {e}")))?.build().map_err(|e| bad(e.to_string()))?;
    // A cell as text: string columns as they are, integer labels in decimal.
    fn text(col: &dyn Array, i: usize) -> std::result::Result<Option<String>, String> {
        if col.is_null(i) {
            return Ok(None);
        }
        Ok(cell(Some(&match col.data_type() {
            DataType::Utf8 => col.as_string::<i32>().value(i).to_string(),
            DataType::LargeUtf8 => col.as_string::<i64>().value(i).to_string(),
            DataType::Utf8View => col.as_string_view().value(i).to_string(),
            DataType::Int64 => col.as_primitive::<Int64Type>().value(i).to_string(),
            DataType::Int32 => col.as_primitive::<Int32Type>().value(i).to_string(),
            other => return Err(format!("is {other}; expected text (or integers for label)")),
        })))
    }
    let mut rows = Vec::new();
    for batch in reader {
        let batch = batch.map_err(|e| bad(e.to_string()))?;
        let path = batch
            .column_by_name("path")
            .ok_or_else(|| bad("no `path` column; the manifest's columns are path, slide_id (optional), label (optional)".into()))?;
        let (id, label) = (batch.column_by_name("slide_id"), batch.column_by_name("label"));
        for i in 0..batch.num_rows() {
            let line = rows.len() + 1;
            let get = |name: &str, col: Option<&arrow_array::ArrayRef>| -> Result<Option<String>> {
                col.map(|c| text(c.as_ref(), i)).transpose().map(Option::flatten).map_err(|p| bad(format!("row {line}: column `{name}` {p}")))
            };
            rows.push(ManifestRow { line, path: get("path", Some(path))?.unwrap_or_default(), slide_id: get("slide_id", id)?, label: get("label", label)? });
        }
    }
    Ok(rows)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(name: &str, text: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("haidef-manifest-{}-{name}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("manifest.csv");
        std::fs::write(&file, text).unwrap();
        file
    }

    #[test]
    fn csv_rows_keep_their_lines_and_optional_cells() {
        let file = write("ok", "label,path,slide_id,notes\ntumour,a/slide,,x\n,\"/abs/b c\",S-2,\nnormal,http://h/dicom-web/studies/1/series/2,S.3,y\n");
        let m = Manifest::open(&file).unwrap();
        assert_eq!(m.rows.len(), 3);
        assert_eq!(m.rows[0], ManifestRow { line: 2, path: "a/slide".into(), slide_id: None, label: Some("tumour".into()) });
        assert_eq!(m.rows[1], ManifestRow { line: 3, path: "/abs/b c".into(), slide_id: Some("S-2".into()), label: None });
        assert_eq!(m.location(&m.rows[0]), file.parent().unwrap().join("a/slide").display().to_string());
        assert_eq!(m.location(&m.rows[1]), "/abs/b c");
        assert!(m.rows[2].is_url() && m.location(&m.rows[2]) == m.rows[2].path);
    }

    #[test]
    fn parquet_manifests_take_text_columns_and_integer_labels() {
        use arrow_array::{ArrayRef, Int64Array, RecordBatch, StringArray};
        use std::sync::Arc;
        let dir = std::env::temp_dir().join(format!("haidef-manifest-{}-parquet", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("cohort.parquet");
        let batch = RecordBatch::try_from_iter([
            ("path", Arc::new(StringArray::from(vec!["a", "b"])) as ArrayRef),
            ("slide_id", Arc::new(StringArray::from(vec![Some("S1"), None])) as ArrayRef),
            ("label", Arc::new(Int64Array::from(vec![Some(1), None])) as ArrayRef),
        ])
        .unwrap();
        let mut w = parquet::arrow::ArrowWriter::try_new(std::fs::File::create(&file).unwrap(), batch.schema(), None).unwrap();
        w.write(&batch).unwrap();
        w.close().unwrap();
        let m = Manifest::open(&file).unwrap();
        assert_eq!(m.rows[0], ManifestRow { line: 1, path: "a".into(), slide_id: Some("S1".into()), label: Some("1".into()) });
        assert_eq!(m.rows[1], ManifestRow { line: 2, path: "b".into(), slide_id: None, label: None });
        // A path column of numbers is refused, naming the row and column.
        let batch = RecordBatch::try_from_iter([("path", Arc::new(arrow_array::Float64Array::from(vec![1.0])) as ArrayRef)]).unwrap();
        let mut w = parquet::arrow::ArrowWriter::try_new(std::fs::File::create(&file).unwrap(), batch.schema(), None).unwrap();
        w.write(&batch).unwrap();
        w.close().unwrap();
        let err = Manifest::open(&file).unwrap_err().to_string();
        assert!(err.contains("row 1: column `path` is Float64; expected text"), "{err}");
    }

    #[test]
    fn bad_manifests_say_which_line_and_what_to_do() {
        let cases = [
            ("nopath", "slide,slide_id\na,b\n", "no `path` column"),
            ("dupid", "path,slide_id\na,X\nb,X\n", "lines 2 and 3: slide_id \"X\" appears twice"),
            ("duppath", "path\na\nb\na\n", "lines 2 and 4: the path \"a\" appears twice"),
            ("badid", "path,slide_id\na,ok\nb,has space\n", "line 3: slide_id \"has space\": ' ' cannot be in a slide id"),
            ("dotid", "path,slide_id\na,..\n", "starts with a letter or digit"),
            ("empty", "path,slide_id\n", "names no slides"),
            ("emptypath", "path,slide_id\n,X\n", "line 2: the path is empty"),
            ("ragged", "path,slide_id\na,X,extra\n", "found record with 3 fields"),
        ];
        for (name, text, want) in cases {
            let err = Manifest::open(&write(name, text)).unwrap_err().to_string();
            assert!(err.contains(want) && err.contains("manifest.csv"), "{name}: {err}");
        }
        let err = Manifest::open(Path::new("/tmp/cohort.txt")).unwrap_err().to_string();
        assert!(err.contains(".csv file") && err.contains(".parquet"), "{err}");
    }
}
