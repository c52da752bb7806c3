//! Input files named on a command line: files as given, folders searched recursively for
//! files of the wanted kinds.

#[cfg(any(feature = "image-files", feature = "audio-files"))]
use crate::error::{PipelineError, Result};
#[cfg(any(feature = "image-files", feature = "audio-files"))]
use std::path::{Path, PathBuf};

/// A file that could not be used, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Skipped {
    /// The file.
    pub path: String,
    /// What was wrong with it.
    pub error: String,
}

/// `paths` as files: files as given, folders searched recursively for files whose extension
/// (case-insensitive) is one of `extensions`, each folder's finds sorted by path. A path that
/// does not exist is an error.
#[cfg(any(feature = "image-files", feature = "audio-files"))]
pub(crate) fn find_files(paths: &[PathBuf], extensions: &[&str]) -> Result<Vec<PathBuf>> {
    let mut out = Vec::new();
    for p in paths {
        if p.is_dir() {
            let mut found = Vec::new();
            walk(p, extensions, &mut found)?;
            found.sort();
            out.extend(found);
        } else if p.is_file() {
            out.push(p.clone());
        } else {
            return Err(PipelineError::Input { path: p.display().to_string(), problem: "no such file or folder".into() });
        }
    }
    Ok(out)
}

#[cfg(any(feature = "image-files", feature = "audio-files"))]
fn walk(dir: &Path, extensions: &[&str], out: &mut Vec<PathBuf>) -> Result<()> {
    let entries = std::fs::read_dir(dir).map_err(|e| PipelineError::Input { path: dir.display().to_string(), problem: e.to_string() })?;
    for entry in entries {
        let entry = entry.map_err(|e| PipelineError::Input { path: dir.display().to_string(), problem: e.to_string() })?;
        let path = entry.path();
        // Linked folders are not followed (a link cycle would never end); linked files are.
        let is_dir = entry.file_type().map(|t| t.is_dir()).unwrap_or(false);
        if is_dir {
            walk(&path, extensions, out)?;
        } else if path.is_file() && path.extension().and_then(|e| e.to_str()).is_some_and(|e| extensions.contains(&e.to_ascii_lowercase().as_str())) {
            out.push(path);
        }
    }
    Ok(())
}

/// What a job over files records at its end: `<count_key>` (rows embedded) and
/// `failed_files`, the skipped files as JSON (`[{"path", "error"}, …]`).
#[cfg(any(feature = "image-files", feature = "audio-files"))]
pub(crate) fn files_metadata(count_key: &str, rows: usize, skipped: &[Skipped]) -> [(String, String); 2] {
    let failed: Vec<serde_json::Value> = skipped.iter().map(|s| serde_json::json!({"path": s.path, "error": s.error})).collect();
    [(count_key.to_string(), rows.to_string()), ("failed_files".to_string(), serde_json::Value::Array(failed).to_string())]
}
