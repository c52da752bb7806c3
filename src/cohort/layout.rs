//! The cohort folder, shared by every task of the cohort:
//!
//! ```text
//! DIR/cohort.json                              shard count and settings, fixed by the first run
//! DIR/embeddings/slide_id=<id>/part-0.parquet  the dataset (Hive layout), one file per slide
//! DIR/heatmaps/<id>/heatmap.png, clusters.png  the after-step's pictures
//! DIR/done/<id>.json                           a finished slide: its file's size and SHA-256
//! DIR/failures/<key>.json                      a slide that failed: error, attempts
//! DIR/staging/<id>@<pid>.<n>/                  work in progress, never read as output
//! ```
//!
//! A slide is finished when its done record exists and its Parquet file still has the recorded
//! size and SHA-256. Outputs are made in `staging/` and renamed into place (pictures, then the
//! Parquet file, then the done record), so a reader of the dataset sees a slide's whole file or
//! nothing, and a task killed at any point leaves only staging folders, which the next attempt
//! at that slide removes.

use crate::error::{PipelineError, Result};
use serde_json::{json, Value};
use sha2::{Digest, Sha256};
use std::collections::HashMap;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

/// Format tag in `cohort.json`.
const FORMAT: &str = "haidef-wsi cohort 1";

/// Seconds since the Unix epoch.
pub fn now() -> f64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0.0, |d| d.as_secs_f64())
}

/// A finished slide, as its done record says.
#[derive(Debug, Clone, PartialEq)]
pub struct DoneRecord {
    /// Its id (the dataset's `slide_id`).
    pub slide_id: String,
    /// The manifest's path cell.
    pub path: String,
    /// The manifest's label cell.
    pub label: Option<String>,
    /// Rows (patches) in its Parquet file.
    pub rows: usize,
    /// Patches left out over broken frames (`skip_unreadable_frames`; listed in its Parquet
    /// file's metadata). Records written before this field read as 0.
    pub unreadable: usize,
    /// Bytes of its Parquet file.
    pub bytes: u64,
    /// SHA-256 of its Parquet file, hex.
    pub sha256: String,
    /// When the slide's run started and finished (seconds since the epoch).
    pub started: f64,
    /// See `started`.
    pub finished: f64,
    /// Failed attempts before this one, plus one.
    pub attempts: u32,
    /// The shard that embedded it.
    pub shard: usize,
}

impl DoneRecord {
    fn to_json(&self) -> Value {
        json!({
            "slide_id": self.slide_id, "path": self.path, "label": self.label, "rows": self.rows, "unreadable_patches": self.unreadable,
            "parquet": { "file": format!("embeddings/slide_id={}/part-0.parquet", self.slide_id), "bytes": self.bytes, "sha256": self.sha256 },
            "started": self.started, "finished": self.finished, "attempts": self.attempts, "shard": self.shard,
        })
    }

    fn from_json(v: &Value) -> Option<DoneRecord> {
        Some(DoneRecord {
            slide_id: v["slide_id"].as_str()?.to_string(),
            path: v["path"].as_str()?.to_string(),
            label: v["label"].as_str().map(str::to_string),
            rows: v["rows"].as_u64()? as usize,
            unreadable: v["unreadable_patches"].as_u64().unwrap_or(0) as usize,
            bytes: v["parquet"]["bytes"].as_u64()?,
            sha256: v["parquet"]["sha256"].as_str()?.to_string(),
            started: v["started"].as_f64()?,
            finished: v["finished"].as_f64()?,
            attempts: v["attempts"].as_u64()? as u32,
            shard: v["shard"].as_u64()? as usize,
        })
    }

    /// Embeddings per hour of this slide's run.
    pub fn per_hour(&self) -> f64 {
        self.rows as f64 * 3600.0 / (self.finished - self.started).max(1e-9)
    }
}

/// A slide that failed, as its failure record says.
#[derive(Debug, Clone, PartialEq)]
pub struct FailureRecord {
    /// The manifest's path cell.
    pub path: String,
    /// Its id, if it was known.
    pub slide_id: Option<String>,
    /// The last error.
    pub error: String,
    /// Failed attempts so far.
    pub attempts: u32,
    /// When it last failed (seconds since the epoch).
    pub when: f64,
    /// The shard that tried it.
    pub shard: usize,
}

/// The cohort folder.
#[derive(Debug, Clone)]
pub struct CohortDir {
    root: PathBuf,
}

impl CohortDir {
    /// The folder at `root` (created, with its subfolders, if missing).
    pub fn create(root: &Path) -> Result<CohortDir> {
        for sub in ["embeddings", "heatmaps", "done", "failures", "staging"] {
            let p = root.join(sub);
            std::fs::create_dir_all(&p).map_err(|e| PipelineError::output(&p, e))?;
        }
        Ok(CohortDir { root: root.to_path_buf() })
    }

    /// An existing cohort folder, for reading.
    pub fn open(root: &Path) -> Result<CohortDir> {
        if !root.join("cohort.json").is_file() {
            return Err(PipelineError::Input {
                path: root.display().to_string(),
                problem: "not a cohort folder (no cohort.json): embed_cohort writes one on its first run".into(),
            });
        }
        Ok(CohortDir { root: root.to_path_buf() })
    }

    /// The folder.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// The dataset's file for a slide.
    pub fn parquet(&self, id: &str) -> PathBuf {
        self.root.join("embeddings").join(format!("slide_id={id}")).join("part-0.parquet")
    }

    /// The slide's picture folder.
    pub fn heatmaps(&self, id: &str) -> PathBuf {
        self.root.join("heatmaps").join(id)
    }

    fn done_file(&self, id: &str) -> PathBuf {
        self.root.join("done").join(format!("{id}.json"))
    }

    fn failure_file(&self, path: &str) -> PathBuf {
        let hash = hex(&Sha256::digest(path.as_bytes()));
        self.root.join("failures").join(format!("{}.json", &hash[..16]))
    }

    /// Fixes the cohort's shard count and settings on the first run (atomically, so tasks that
    /// start together agree) and refuses a later run that differs.
    pub fn settle(&self, shards: usize, settings: &Value) -> Result<()> {
        let file = self.root.join("cohort.json");
        let mine = json!({ "format": FORMAT, "shards": shards, "settings": settings });
        let tmp = self.root.join(format!("cohort.json.{}.partial", std::process::id()));
        std::fs::write(&tmp, serde_json::to_vec_pretty(&mine).expect("json")).map_err(|e| PipelineError::output(&tmp, e))?;
        // A hard link fails if cohort.json exists: the first task to link wins, the others compare.
        let linked = std::fs::hard_link(&tmp, &file);
        let _ = std::fs::remove_file(&tmp);
        if linked.is_ok() {
            return Ok(());
        }
        let bad = |problem: String| PipelineError::Input { path: file.display().to_string(), problem };
        let theirs: Value = serde_json::from_slice(&std::fs::read(&file).map_err(|e| bad(e.to_string()))?).map_err(|e| bad(format!("not JSON: {e}")))?;
        if theirs["format"] != FORMAT {
            return Err(bad(format!("written by another version ({}); use a new --out", theirs["format"])));
        }
        if theirs["shards"] != json!(shards) {
            return Err(bad(format!(
                "this cohort was started with --shards {}; rerun with --shards {} (each slide's shard depends on it), or use a new --out",
                theirs["shards"], theirs["shards"]
            )));
        }
        let differ: Vec<String> = settings
            .as_object()
            .expect("settings are an object")
            .iter()
            .filter(|(k, v)| theirs["settings"][k.as_str()] != **v)
            .map(|(k, v)| format!("{k}: {} before, {v} now", theirs["settings"][k.as_str()]))
            .collect();
        if !differ.is_empty() {
            return Err(bad(format!(
                "this cohort was started with other settings ({}); its slides must be embedded alike: rerun with the first settings, or use a new --out",
                differ.join("; ")
            )));
        }
        Ok(())
    }

    /// The shard count fixed by the first run.
    pub fn shards(&self) -> Result<usize> {
        let file = self.root.join("cohort.json");
        let v: Value = serde_json::from_slice(&std::fs::read(&file).map_err(|e| PipelineError::output(&file, e))?)
            .map_err(|e| PipelineError::Input { path: file.display().to_string(), problem: format!("not JSON: {e}") })?;
        v["shards"].as_u64().map(|n| n as usize).ok_or_else(|| PipelineError::Input { path: file.display().to_string(), problem: "no shard count".into() })
    }

    /// The done record of `id`, if there is one and it is readable.
    pub fn done(&self, id: &str) -> Option<DoneRecord> {
        let v: Value = serde_json::from_slice(&std::fs::read(self.done_file(id)).ok()?).ok()?;
        DoneRecord::from_json(&v).filter(|r| r.slide_id == id)
    }

    /// Every readable done record.
    pub fn all_done(&self) -> Vec<DoneRecord> {
        let mut out: Vec<DoneRecord> = read_jsons(&self.root.join("done")).iter().filter_map(DoneRecord::from_json).collect();
        out.sort_by(|a, b| a.slide_id.cmp(&b.slide_id));
        out
    }

    /// Why `record`'s Parquet file is not the one it recorded, or `None` when it is: checked by
    /// size and then by SHA-256 (`full`) or size alone.
    pub fn verify(&self, record: &DoneRecord, full: bool) -> Option<String> {
        let file = self.parquet(&record.slide_id);
        let bytes = match std::fs::metadata(&file) {
            Ok(m) => m.len(),
            Err(e) => return Some(format!("{}: {e}", file.display())),
        };
        if bytes != record.bytes {
            return Some(format!("{} is {bytes} bytes, its record says {}", file.display(), record.bytes));
        }
        if full {
            match sha256_file(&file) {
                Ok(h) if h == record.sha256 => {}
                Ok(_) => return Some(format!("{}: its SHA-256 differs from its record's", file.display())),
                Err(e) => return Some(format!("{}: {e}", file.display())),
            }
        }
        None
    }

    /// Writes a done record (atomically) and drops the slide's failure record.
    pub fn mark_done(&self, record: &DoneRecord) -> Result<()> {
        write_json(&self.done_file(&record.slide_id), &record.to_json())?;
        let _ = std::fs::remove_file(self.failure_file(&record.path));
        Ok(())
    }

    /// Removes a slide's done record (before its outputs are replaced).
    pub fn unmark_done(&self, id: &str) -> Result<()> {
        let f = self.done_file(id);
        match std::fs::remove_file(&f) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(PipelineError::output(&f, e)),
            _ => Ok(()),
        }
    }

    /// The failure record of the slide at `path`, if any.
    pub fn failure(&self, path: &str) -> Option<FailureRecord> {
        let v: Value = serde_json::from_slice(&std::fs::read(self.failure_file(path)).ok()?).ok()?;
        failure_from_json(&v).filter(|f| f.path == path)
    }

    /// Records (atomically) that the slide at `path` failed, counting the attempt.
    pub fn mark_failed(&self, path: &str, slide_id: Option<&str>, error: &str, shard: usize) -> Result<FailureRecord> {
        let attempts = self.failure(path).map_or(0, |f| f.attempts) + 1;
        let record = FailureRecord { path: path.to_string(), slide_id: slide_id.map(str::to_string), error: error.to_string(), attempts, when: now(), shard };
        let v = json!({ "path": record.path, "slide_id": record.slide_id, "error": record.error, "attempts": attempts, "when": record.when, "shard": shard });
        write_json(&self.failure_file(path), &v)?;
        Ok(record)
    }

    /// A fresh staging folder for `id`, after removing any left by killed attempts at it.
    pub fn stage(&self, id: &str) -> Result<PathBuf> {
        self.clear_staging(id);
        let n = (now() * 1e6) as u64 % 1_000_000_000;
        let dir = self.root.join("staging").join(format!("{id}@{}.{n}", std::process::id()));
        std::fs::create_dir_all(&dir).map_err(|e| PipelineError::output(&dir, e))?;
        Ok(dir)
    }

    /// Removes the staging folders of `id`.
    pub fn clear_staging(&self, id: &str) {
        // `@` cannot be in an id, so "1.2" never matches "1.2.3@…".
        let prefix = format!("{id}@");
        for entry in std::fs::read_dir(self.root.join("staging")).into_iter().flatten().flatten() {
            if entry.file_name().to_str().is_some_and(|n| n.starts_with(&prefix)) {
                let _ = std::fs::remove_dir_all(entry.path());
            }
        }
    }

    /// Names of the folders in `staging/` (work in progress, or left by killed tasks).
    pub fn staging(&self) -> Vec<String> {
        let mut v: Vec<String> =
            std::fs::read_dir(self.root.join("staging")).into_iter().flatten().flatten().filter_map(|e| e.file_name().to_str().map(str::to_string)).collect();
        v.sort();
        v
    }

    /// Moves a staged run's outputs into place: the pictures, then the Parquet file (one
    /// rename, so the dataset gains the slide's rows all at once), then the done record. Any
    /// earlier outputs of the slide are replaced, never added to.
    pub fn commit(&self, staged: &Path, parquet: &Path, pictures: &[PathBuf], record: &DoneRecord) -> Result<()> {
        let id = &record.slide_id;
        self.unmark_done(id)?;
        let pics = staged.join("heatmaps");
        std::fs::create_dir_all(&pics).map_err(|e| PipelineError::output(&pics, e))?;
        for p in pictures {
            let to = pics.join(p.file_name().expect("a file"));
            std::fs::rename(p, &to).map_err(|e| PipelineError::output(&to, e))?;
        }
        let target = self.heatmaps(id);
        if target.exists() {
            std::fs::remove_dir_all(&target).map_err(|e| PipelineError::output(&target, e))?;
        }
        std::fs::rename(&pics, &target).map_err(|e| PipelineError::output(&target, e))?;
        let file = self.parquet(id);
        let folder = file.parent().expect("a folder");
        std::fs::create_dir_all(folder).map_err(|e| PipelineError::output(folder, e))?;
        std::fs::rename(parquet, &file).map_err(|e| PipelineError::output(&file, e))?;
        sync_dir(folder);
        self.mark_done(record)?;
        let _ = std::fs::remove_dir_all(staged);
        Ok(())
    }
}

fn failure_from_json(v: &Value) -> Option<FailureRecord> {
    Some(FailureRecord {
        path: v["path"].as_str()?.to_string(),
        slide_id: v["slide_id"].as_str().map(str::to_string),
        error: v["error"].as_str()?.to_string(),
        attempts: v["attempts"].as_u64()? as u32,
        when: v["when"].as_f64()?,
        shard: v["shard"].as_u64()? as usize,
    })
}

impl CohortDir {
    /// Every readable failure record.
    pub fn all_failures(&self) -> Vec<FailureRecord> {
        read_jsons(&self.root.join("failures")).iter().filter_map(failure_from_json).collect()
    }
}

/// The JSON files of a folder, parsed (unreadable ones skipped: a record being renamed into
/// place is either there whole or not at all).
fn read_jsons(dir: &Path) -> Vec<Value> {
    std::fs::read_dir(dir)
        .into_iter()
        .flatten()
        .flatten()
        .filter(|e| e.path().extension().is_some_and(|x| x == "json"))
        .filter_map(|e| serde_json::from_slice(&std::fs::read(e.path()).ok()?).ok())
        .collect()
}

/// Writes `value` to `<file>.partial`, flushes it to disk and renames it to `file`.
fn write_json(file: &Path, value: &Value) -> Result<()> {
    use std::io::Write;
    let (atomic, mut f) = crate::output::atomic::AtomicFile::create(file)?;
    f.write_all(&serde_json::to_vec_pretty(value).expect("json")).map_err(|e| PipelineError::output(file, e))?;
    f.sync_all().map_err(|e| PipelineError::output(file, e))?;
    atomic.commit()?;
    if let Some(dir) = file.parent() {
        sync_dir(dir);
    }
    Ok(())
}

/// Flushes a folder's entries (renames) to disk; best effort (some file systems refuse).
fn sync_dir(dir: &Path) {
    if let Ok(d) = std::fs::File::open(dir) {
        let _ = d.sync_all();
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// SHA-256 of a file, hex.
pub fn sha256_file(path: &Path) -> std::io::Result<String> {
    let mut f = std::fs::File::open(path)?;
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = f.read(&mut buf)?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
    }
    Ok(hex(&hasher.finalize()))
}

/// Done records by manifest path (for rows without a slide id).
pub fn by_path(records: &[DoneRecord]) -> HashMap<&str, &DoneRecord> {
    records.iter().map(|r| (r.path.as_str(), r)).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dir(name: &str) -> CohortDir {
        let root = std::env::temp_dir().join(format!("haidef-cohortdir-{}-{name}", std::process::id()));
        let _ = std::fs::remove_dir_all(&root);
        CohortDir::create(&root).unwrap()
    }

    #[test]
    fn the_first_run_fixes_shards_and_settings() {
        let d = dir("settle");
        let s = json!({ "model": "a", "level": 1 });
        d.settle(3, &s).unwrap();
        d.settle(3, &s).unwrap();
        let err = d.settle(4, &s).unwrap_err().to_string();
        assert!(err.contains("started with --shards 3; rerun with --shards 3"), "{err}");
        let err = d.settle(3, &json!({ "model": "b", "level": 1 })).unwrap_err().to_string();
        assert!(err.contains("model: \"a\" before, \"b\" now"), "{err}");
        assert_eq!(d.shards().unwrap(), 3);
    }

    #[test]
    fn a_done_record_holds_only_while_its_file_is_unchanged() {
        let d = dir("verify");
        let staged = d.stage("S1").unwrap();
        let parquet = staged.join("embeddings.parquet");
        std::fs::write(&parquet, b"rows").unwrap();
        let pic = staged.join("heatmap.png");
        std::fs::write(&pic, b"png").unwrap();
        let record = DoneRecord {
            slide_id: "S1".into(),
            path: "a".into(),
            label: None,
            rows: 1,
            unreadable: 2,
            bytes: 4,
            sha256: sha256_file(&parquet).unwrap(),
            started: 1.0,
            finished: 2.0,
            attempts: 1,
            shard: 0,
        };
        d.mark_failed("a", Some("S1"), "earlier", 0).unwrap();
        d.commit(&staged, &parquet, &[pic], &record).unwrap();
        assert!(!staged.exists() && d.heatmaps("S1").join("heatmap.png").is_file());
        assert!(d.failure("a").is_none(), "success clears the failure");
        let back = d.done("S1").unwrap();
        assert_eq!(back, record);
        // A record written before `unreadable_patches` existed reads as none left out.
        let mut old = back.to_json();
        old.as_object_mut().unwrap().remove("unreadable_patches");
        assert_eq!(DoneRecord::from_json(&old).unwrap(), DoneRecord { unreadable: 0, ..record.clone() });
        assert_eq!(d.verify(&back, true), None);
        std::fs::write(d.parquet("S1"), b"ROWS").unwrap();
        assert_eq!(d.verify(&back, false), None, "same size");
        assert!(d.verify(&back, true).unwrap().contains("SHA-256"));
        std::fs::write(d.parquet("S1"), b"row").unwrap();
        assert!(d.verify(&back, false).unwrap().contains("3 bytes, its record says 4"));
    }

    #[test]
    fn failures_count_attempts_and_staging_is_cleared_per_slide() {
        let d = dir("fail");
        assert_eq!(d.mark_failed("p", None, "one", 1).unwrap().attempts, 1);
        let f = d.mark_failed("p", None, "two", 2).unwrap();
        assert_eq!((f.attempts, f.error.as_str(), f.shard), (2, "two", 2));
        assert_eq!(d.all_failures().len(), 1);
        let a = d.stage("X").unwrap();
        let b = d.stage("X.1").unwrap();
        assert_eq!(d.staging().len(), 2);
        d.stage("X").unwrap();
        assert!(!a.exists() && b.exists(), "a new attempt at X removes X's old folder, not X.1's");
    }
}
