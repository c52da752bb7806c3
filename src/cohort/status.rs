//! Where a cohort stands: each manifest row done, failed or missing, and the throughput of
//! the finished slides.

use super::layout::{by_path, CohortDir, DoneRecord, FailureRecord};
use super::manifest::{Manifest, ManifestRow};
use crate::error::Result;
use std::collections::HashMap;

/// One slide's state.
#[derive(Debug, Clone, PartialEq)]
pub enum SlideState {
    /// Finished and verified.
    Done(DoneRecord),
    /// Has a done record whose file no longer matches it (the next run redoes it).
    Damaged(DoneRecord, String),
    /// Failed (and not finished since).
    Failed(FailureRecord),
    /// Not attempted yet, or in progress, or interrupted.
    Missing,
}

impl SlideState {
    /// One word for a table.
    pub fn word(&self) -> &'static str {
        match self {
            SlideState::Done(_) => "done",
            SlideState::Damaged(..) => "damaged",
            SlideState::Failed(_) => "failed",
            SlideState::Missing => "missing",
        }
    }
}

/// The cohort's state.
#[derive(Debug, Clone)]
pub struct CohortStatus {
    /// Shard count the cohort was started with.
    pub shards: usize,
    /// Each manifest row with its state, in manifest order.
    pub slides: Vec<(ManifestRow, SlideState)>,
    /// Done records of slides the manifest no longer names.
    pub extra: Vec<DoneRecord>,
    /// Staging folders present (slides in progress, or left by killed tasks).
    pub staging: Vec<String>,
}

impl CohortStatus {
    /// Reads the cohort folder `dir` against `manifest`. `full` checks each finished file's
    /// SHA-256 (reads every file); otherwise its size.
    pub fn read(dir: &std::path::Path, manifest: &Manifest, full: bool) -> Result<CohortStatus> {
        let dir = CohortDir::open(dir)?;
        let done = dir.all_done();
        let paths = by_path(&done);
        let ids: HashMap<&str, &DoneRecord> = done.iter().map(|r| (r.slide_id.as_str(), r)).collect();
        let failures: HashMap<String, FailureRecord> = dir.all_failures().into_iter().map(|f| (f.path.clone(), f)).collect();
        let mut named = std::collections::HashSet::new();
        let slides = manifest
            .rows
            .iter()
            .map(|row| {
                let record = match &row.slide_id {
                    Some(id) => ids.get(id.as_str()).filter(|r| r.path == row.path),
                    None => paths.get(row.path.as_str()),
                };
                let state = match (record, failures.get(&row.path)) {
                    (Some(r), _) => {
                        named.insert(r.slide_id.clone());
                        match dir.verify(r, full) {
                            None => SlideState::Done((*r).clone()),
                            Some(why) => SlideState::Damaged((*r).clone(), why),
                        }
                    }
                    (None, Some(f)) => SlideState::Failed(f.clone()),
                    (None, None) => SlideState::Missing,
                };
                (row.clone(), state)
            })
            .collect();
        let extra = done.iter().filter(|r| !named.contains(&r.slide_id)).cloned().collect();
        Ok(CohortStatus { shards: dir.shards()?, slides, extra, staging: dir.staging() })
    }

    /// How many slides are in `word`'s state.
    pub fn count(&self, word: &str) -> usize {
        self.slides.iter().filter(|(_, s)| s.word() == word).count()
    }

    /// Finished slides' records.
    pub fn done(&self) -> impl Iterator<Item = &DoneRecord> {
        self.slides.iter().filter_map(|(_, s)| if let SlideState::Done(r) = s { Some(r) } else { None })
    }

    /// Embeddings per hour of the finished slides: (per task: rows over the sum of the slides'
    /// run times; whole cohort: rows over the time from the first start to the last finish,
    /// which counts tasks running side by side).
    pub fn per_hour(&self) -> Option<(f64, f64)> {
        let rows: usize = self.done().map(|r| r.rows).sum();
        let busy: f64 = self.done().map(|r| r.finished - r.started).sum();
        let first = self.done().map(|r| r.started).fold(f64::INFINITY, f64::min);
        let last = self.done().map(|r| r.finished).fold(f64::NEG_INFINITY, f64::max);
        (rows > 0).then(|| (rows as f64 * 3600.0 / busy.max(1e-9), rows as f64 * 3600.0 / (last - first).max(1e-9)))
    }

    /// Whether every slide is done.
    pub fn complete(&self) -> bool {
        self.slides.iter().all(|(_, s)| matches!(s, SlideState::Done(_)))
    }
}
