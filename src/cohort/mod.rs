//! Cohorts: thousands of slides embedded by a Slurm job array or a Kubernetes Indexed Job,
//! each task one shard, into one Parquet dataset that any task may be killed and rerun against.
//!
//! - `manifest`: the cohort's slides (CSV or Parquet: `path`, `slide_id`, `label`).
//! - `shard`: which slides a task embeds, and where its index comes from.
//! - `layout`: the cohort folder (dataset, pictures, done and failure records, staging).
//! - `run`: one shard, slide by slide, resumable ([`CohortJob`]).
//! - `status`: done, failed and missing slides ([`CohortStatus`]).

mod layout;
mod manifest;
mod run;
mod shard;
mod status;

pub use layout::{CohortDir, DoneRecord, FailureRecord};
pub use manifest::{Manifest, ManifestRow};
pub use run::{CohortJob, Event, ShardReport};
pub use shard::{Shard, ShardOrigin};
pub use status::{CohortStatus, SlideState};
