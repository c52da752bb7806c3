//! One shard of a cohort: for each of its slides, skip it if its output is verified finished,
//! else run the slide job into a staging folder and move the outputs into place. A slide that
//! fails is recorded in `failures/` and the shard goes on; a cancelled run (SIGTERM from
//! `scancel`, Ctrl-C) leaves nothing half-written.

use super::layout::{by_path, now, sha256_file, CohortDir, DoneRecord};
use super::manifest::{check_slide_id, Manifest, ManifestRow};
use super::shard::Shard;
use crate::error::{PipelineError, Result};
use crate::slide::{LevelChoice, PipelineOptions, SlideJob};
use haidef_wsi_dicom::Slide;
use haidef_wsi_encoders::Encoder;
use serde_json::{json, Value};
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};

/// What happened to a slide, as it happens (for logs and progress bars).
#[derive(Debug)]
pub enum Event<'e> {
    /// The shard's slides: how many it owns.
    Shard {
        /// Slides this shard owns.
        slides: usize,
    },
    /// A slide's verified output is already there.
    Skipped {
        /// Its manifest row.
        row: &'e ManifestRow,
        /// Its id.
        slide_id: &'e str,
    },
    /// A slide's earlier output failed verification: it is embedded again.
    Redo {
        /// Its manifest row.
        row: &'e ManifestRow,
        /// What was wrong.
        reason: &'e str,
    },
    /// A slide is being embedded (the `n`th of the shard's slides, from 1).
    Started {
        /// Its manifest row.
        row: &'e ManifestRow,
        /// Its id.
        slide_id: &'e str,
        /// Which of the shard's slides.
        n: usize,
    },
    /// Patches embedded so far of the current slide.
    Patches {
        /// Rows written.
        done: usize,
        /// Rows expected.
        total: usize,
    },
    /// A slide's outputs are in place.
    Finished {
        /// Its done record.
        record: &'e DoneRecord,
    },
    /// A slide failed (and was recorded).
    Failed {
        /// Its manifest row.
        row: &'e ManifestRow,
        /// The error.
        error: &'e str,
        /// Failed attempts so far.
        attempts: u32,
    },
}

/// What a shard did.
#[derive(Debug, Clone, Default)]
pub struct ShardReport {
    /// Slides the shard owns.
    pub slides: usize,
    /// Of those, found finished.
    pub skipped: usize,
    /// Embedded by this run.
    pub embedded: usize,
    /// Failed in this run: (manifest line, path, error).
    pub failed: Vec<(usize, String, String)>,
    /// Rows written by this run.
    pub rows: usize,
    /// Seconds spent embedding the slides of this run (opening included).
    pub seconds: f64,
    /// Whether the run was cancelled before the shard's end.
    pub cancelled: bool,
}

impl ShardReport {
    /// Whether every slide of the shard is finished.
    pub fn complete(&self) -> bool {
        !self.cancelled && self.failed.is_empty() && self.skipped + self.embedded == self.slides
    }
}

/// What must be equal across a cohort's runs for its slides to be comparable: the model and its
/// weights, and every option that changes the rows or pictures (not batch size or device).
pub fn settings(encoder: &dyn Encoder, options: &PipelineOptions) -> Value {
    let level = match options.level {
        LevelChoice::Index(i) => format!("level {i}"),
        LevelChoice::Mpp(m) => format!("{m} µm/px"),
    };
    json!({
        "model": encoder.model_id(),
        "weights": encoder.weights_id(),
        "level": level,
        "min_tissue": if options.all_patches { Value::Null } else { json!(options.min_tissue) },
        "all_patches": options.all_patches,
        "icc_to_srgb": options.icc_to_srgb,
        "k": options.k,
        "seed": options.seed,
        "prompts": options.prompts,
        "skip_unreadable_frames": options.skip_unreadable_frames,
    })
}

/// One shard of a cohort, set up step by step and then run.
pub struct CohortJob<'a> {
    manifest: &'a Manifest,
    encoder: &'a dyn Encoder,
    dir: &'a Path,
    shard: Shard,
    options: PipelineOptions,
    batch_size: Option<usize>,
    #[cfg(feature = "dicomweb")]
    dicomweb: haidef_wsi_dicom::DicomWebOptions,
    cancel: Option<&'a AtomicBool>,
    events: Option<&'a (dyn Fn(&Event<'_>) + Sync)>,
}

impl<'a> CohortJob<'a> {
    /// Shard `shard` of `manifest`'s slides, embedded with `encoder` into the cohort folder `dir`.
    pub fn new(manifest: &'a Manifest, encoder: &'a dyn Encoder, dir: &'a Path, shard: Shard) -> Self {
        CohortJob {
            manifest,
            encoder,
            dir,
            shard,
            options: PipelineOptions::default(),
            batch_size: None,
            #[cfg(feature = "dicomweb")]
            dicomweb: Default::default(),
            cancel: None,
            events: None,
        }
    }

    /// The slide job's options (the same for every slide).
    pub fn options(mut self, options: PipelineOptions) -> Self {
        self.options = options;
        self
    }

    /// Patches per encoder batch (default: the slide job's, 32).
    pub fn batch_size(mut self, n: usize) -> Self {
        self.batch_size = Some(n);
        self
    }

    /// How DICOMweb slides (manifest paths that are URLs) are fetched: authentication, CA
    /// certificates, concurrency.
    #[cfg(feature = "dicomweb")]
    pub fn dicomweb(mut self, options: haidef_wsi_dicom::DicomWebOptions) -> Self {
        self.dicomweb = options;
        self
    }

    /// A flag that stops the run promptly when set: the slide in progress is dropped (its
    /// staging folder removed) and the shard ends with `cancelled`.
    pub fn cancel(mut self, flag: &'a AtomicBool) -> Self {
        self.cancel = Some(flag);
        self
    }

    /// Called with each [`Event`].
    pub fn events(mut self, events: &'a (dyn Fn(&Event<'_>) + Sync)) -> Self {
        self.events = Some(events);
        self
    }

    /// Runs the shard. Errors are only those that stop the whole shard (the folder cannot be
    /// written, or was started with another shard count or other settings); a slide's own
    /// failure is recorded and reported in [`ShardReport::failed`].
    pub fn run(self) -> Result<ShardReport> {
        let never = AtomicBool::new(false);
        let cancel = self.cancel.unwrap_or(&never);
        let emit = |e: &Event<'_>| {
            if let Some(f) = self.events {
                f(e)
            }
        };
        let dir = CohortDir::create(self.dir)?;
        dir.settle(self.shard.count, &settings(self.encoder, &self.options))?;
        let done = dir.all_done();
        let done_by_path = by_path(&done);
        let rows: Vec<&ManifestRow> = self.manifest.rows.iter().enumerate().filter(|(r, _)| self.shard.owns(*r)).map(|(_, row)| row).collect();
        let mut report = ShardReport { slides: rows.len(), ..Default::default() };
        emit(&Event::Shard { slides: rows.len() });
        for (n, row) in rows.into_iter().enumerate() {
            if cancel.load(Ordering::Relaxed) {
                report.cancelled = true;
                break;
            }
            // A finished slide is skipped without opening it when its id is known.
            let known = row.slide_id.clone().or_else(|| done_by_path.get(row.path.as_str()).map(|r| r.slide_id.clone()));
            if let Some(id) = &known {
                if self.finished(&dir, row, id, &emit) {
                    report.skipped += 1;
                    continue;
                }
            }
            let start = now();
            match self.embed(&dir, row, known, n + 1, cancel, &emit) {
                Ok(Some(record)) => {
                    report.embedded += 1;
                    report.rows += record.rows;
                    emit(&Event::Finished { record: &record });
                }
                Ok(None) => report.skipped += 1,
                Err((id, PipelineError::Cancelled)) => {
                    if let Some(id) = id {
                        dir.clear_staging(&id);
                    }
                    report.cancelled = true;
                }
                Err((id, e)) => {
                    if let Some(id) = &id {
                        dir.clear_staging(id);
                    }
                    let error = e.to_string();
                    let record = dir.mark_failed(&row.path, id.as_deref(), &error, self.shard.index)?;
                    emit(&Event::Failed { row, error: &error, attempts: record.attempts });
                    report.failed.push((row.line, row.path.clone(), error));
                }
            }
            report.seconds += now() - start;
            if report.cancelled {
                break;
            }
        }
        Ok(report)
    }

    /// Whether `id`'s output is finished, for this row, and intact.
    fn finished(&self, dir: &CohortDir, row: &ManifestRow, id: &str, emit: &dyn Fn(&Event<'_>)) -> bool {
        let Some(record) = dir.done(id) else { return false };
        if record.path != row.path {
            let reason = format!("its output was made from {:?}, the manifest now says {:?}", record.path, row.path);
            emit(&Event::Redo { row, reason: &reason });
            return false;
        }
        match dir.verify(&record, true) {
            None => {
                emit(&Event::Skipped { row, slide_id: id });
                true
            }
            Some(reason) => {
                emit(&Event::Redo { row, reason: &reason });
                false
            }
        }
    }

    /// Opens and embeds one slide; `Ok(None)` when opening it showed it finished. The error
    /// carries the slide's id when it was known. (A large error value is no cost here: one per
    /// slide.)
    #[allow(clippy::result_large_err)]
    fn embed(
        &self,
        dir: &CohortDir,
        row: &ManifestRow,
        known: Option<String>,
        n: usize,
        cancel: &AtomicBool,
        emit: &(dyn Fn(&Event<'_>) + Sync),
    ) -> std::result::Result<Option<DoneRecord>, (Option<String>, PipelineError)> {
        let slide = self.open(row).map_err(|e| (known.clone(), e))?;
        let id = match known {
            Some(id) => id,
            None => {
                let uid = slide.series_instance_uid().to_string();
                check_slide_id(&uid).map_err(|p| {
                    (
                        None,
                        PipelineError::Input {
                            path: row.path.clone(),
                            problem: format!("its SeriesInstanceUID {uid:?} cannot be a slide id ({p}); give the row a slide_id"),
                        },
                    )
                })?;
                if let Some(other) = dir.done(&uid).filter(|r| r.path != row.path) {
                    let problem = format!("its SeriesInstanceUID {uid} is already the id of {:?}; give this row its own slide_id", other.path);
                    return Err((None, PipelineError::Input { path: row.path.clone(), problem }));
                }
                if self.finished(dir, row, &uid, &|e| emit(e)) {
                    return Ok(None);
                }
                uid
            }
        };
        let fail = |e: PipelineError| (Some(id.clone()), e);
        emit(&Event::Started { row, slide_id: &id, n });
        let started = now();
        let staged = dir.stage(&id).map_err(fail)?;
        let progress = |done: usize, total: usize| emit(&Event::Patches { done, total });
        let mut job = SlideJob::new(&slide, self.encoder, &staged).options(self.options.clone()).slide_id(id.clone()).cancel(cancel).progress(&progress);
        if let Some(n) = self.batch_size {
            job = job.batch_size(n);
        }
        if let Some(label) = &row.label {
            job = job.metadata("label", label.clone());
        }
        let summary = job.run().map_err(fail)?;
        let (parquet, pictures) = summary.outputs.split_first().expect("the Parquet file comes first");
        let bytes = std::fs::metadata(parquet).map_err(|e| fail(PipelineError::output(parquet, e)))?.len();
        let sha256 = sha256_file(parquet).map_err(|e| fail(PipelineError::output(parquet, e)))?;
        let attempts = dir.failure(&row.path).map_or(0, |f| f.attempts) + 1;
        let record = DoneRecord {
            slide_id: id.clone(),
            path: row.path.clone(),
            label: row.label.clone(),
            rows: summary.embedded,
            unreadable: summary.unreadable.len(),
            bytes,
            sha256,
            started,
            finished: now(),
            attempts,
            shard: self.shard.index,
        };
        dir.commit(&staged, parquet, pictures, &record).map_err(fail)?;
        Ok(Some(record))
    }

    fn open(&self, row: &ManifestRow) -> Result<Slide> {
        let location = self.manifest.location(row);
        if row.is_url() {
            #[cfg(feature = "dicomweb")]
            return Ok(Slide::open_dicomweb(&location, &self.dicomweb)?);
            #[cfg(not(feature = "dicomweb"))]
            return Err(PipelineError::Input {
                path: location,
                problem: "a DICOMweb URL, but this build of haidef-wsi has no DICOMweb: enable its `dicomweb` feature".into(),
            });
        }
        if !Path::new(&location).exists() {
            let hint = if Path::new(&row.path).is_absolute() {
                String::new()
            } else {
                format!(" (a relative path is taken from the manifest's folder, {})", self.manifest.file.parent().unwrap_or(Path::new(".")).display())
            };
            return Err(PipelineError::Input { path: location, problem: format!("no such slide folder or file{hint}") });
        }
        Ok(Slide::open(Path::new(&location))?)
    }
}
