//! Which share of the cohort one task embeds.
//!
//! Slides go to shards round-robin in manifest order: row `r` (0-based) belongs to shard
//! `r mod N`. That is deterministic, balanced to within one slide, and needs nothing but the
//! manifest (no slide is opened to decide); a manifest sorted by size or site is spread evenly
//! across shards. A stable hash of the path would survive rows being inserted, but balances only
//! on average; since finished slides are found by their id, not their shard, an edited manifest
//! loses no work either way.
//!
//! The shard index comes from `--shard`, else from the scheduler: Slurm's `SLURM_ARRAY_TASK_ID`
//! (minus `--shard-offset` for arrays numbered from 1) or Kubernetes' `JOB_COMPLETION_INDEX`.
//! The count N is always given (`--shards`), never read from the array: a resubmission of one
//! failed index (`sbatch --array=1`) is an array of one task, yet must still embed shard 1 of N.
//! For the same reason the index is not taken relative to `SLURM_ARRAY_TASK_MIN` (which is 1 in
//! that resubmission, and would turn shard 1 into shard 0).

use crate::error::{PipelineError, Result};

/// Shard `index` of `count`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Shard {
    /// 0-based.
    pub index: usize,
    /// How many shards the cohort is cut into.
    pub count: usize,
}

/// Where the shard index came from, for the log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ShardOrigin {
    /// `--shard`.
    Argument,
    /// `SLURM_ARRAY_TASK_ID` (and the job id, for the log).
    Slurm(String),
    /// `JOB_COMPLETION_INDEX`.
    Kubernetes,
    /// One shard: nothing to choose.
    Single,
}

impl Shard {
    /// Shard `index` of `count`, checked.
    pub fn new(index: usize, count: usize) -> Result<Shard> {
        if count == 0 {
            return Err(PipelineError::Options("--shards must be at least 1".into()));
        }
        if index >= count {
            return Err(PipelineError::Options(format!("shard {index} does not exist: with --shards {count} the shards are 0 to {}", count - 1)));
        }
        Ok(Shard { index, count })
    }

    /// Resolves the shard: `index` if given, else from the environment `env` (use
    /// `|k| std::env::var(k).ok()`), as the module's documentation says.
    pub fn resolve(index: Option<usize>, count: usize, offset: usize, env: impl Fn(&str) -> Option<String>) -> Result<(Shard, ShardOrigin)> {
        let number = |var: &str, value: String| -> Result<usize> {
            value.trim().parse().map_err(|_| PipelineError::Options(format!("{var}={value:?} is not a task index")))
        };
        if count == 0 {
            return Shard::new(0, 0).map(|s| (s, ShardOrigin::Single));
        }
        if let Some(i) = index {
            return Ok((Shard::new(i, count)?, ShardOrigin::Argument));
        }
        if let Some(v) = env("SLURM_ARRAY_TASK_ID") {
            let id = number("SLURM_ARRAY_TASK_ID", v)?;
            let job = env("SLURM_ARRAY_JOB_ID").unwrap_or_default();
            let index = id.checked_sub(offset).ok_or_else(|| PipelineError::Options(format!("array task {id} is below --shard-offset {offset}")))?;
            return Shard::new(index, count)
                .map_err(|_| {
                    PipelineError::Options(format!(
                        "Slurm array task {id} (shard {index} after --shard-offset {offset}) is beyond --shards {count}: \
                         submit --array={offset}-{} (shards are numbered from --shard-offset, which is 0 unless given)",
                        offset + count - 1
                    ))
                })
                .map(|s| (s, ShardOrigin::Slurm(job)));
        }
        if let Some(v) = env("JOB_COMPLETION_INDEX") {
            let index = number("JOB_COMPLETION_INDEX", v)?;
            return Shard::new(index, count)
                .map_err(|_| {
                    PipelineError::Options(format!("Kubernetes completion index {index} is beyond --shards {count}: set the Job's completions to {count}"))
                })
                .map(|s| (s, ShardOrigin::Kubernetes));
        }
        if count == 1 {
            return Ok((Shard { index: 0, count }, ShardOrigin::Single));
        }
        Err(PipelineError::Options(format!(
            "which of the {count} shards is this? pass --shard I, or run under a Slurm job array (SLURM_ARRAY_TASK_ID) or a Kubernetes Indexed Job (JOB_COMPLETION_INDEX)"
        )))
    }

    /// Whether manifest row `r` (0-based) belongs to this shard.
    pub fn owns(&self, r: usize) -> bool {
        r % self.count == self.index
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env<'a>(vars: &'a [(&'a str, &'a str)]) -> impl Fn(&str) -> Option<String> + 'a {
        move |k| vars.iter().find(|(n, _)| *n == k).map(|(_, v)| v.to_string())
    }

    #[test]
    fn shards_take_every_row_once_and_balance_to_one() {
        for count in 1..6 {
            let shards: Vec<Shard> = (0..count).map(|i| Shard::new(i, count).unwrap()).collect();
            let sizes: Vec<usize> = shards.iter().map(|s| (0..17).filter(|r| s.owns(*r)).count()).collect();
            assert_eq!(sizes.iter().sum::<usize>(), 17);
            assert!(sizes.iter().max().unwrap() - sizes.iter().min().unwrap() <= 1, "{sizes:?}");
            for r in 0..17 {
                assert_eq!(shards.iter().filter(|s| s.owns(r)).count(), 1);
            }
        }
    }

    #[test]
    fn the_index_comes_from_the_argument_slurm_or_kubernetes() {
        let none = env(&[]);
        assert_eq!(Shard::resolve(Some(2), 3, 0, &none).unwrap(), (Shard { index: 2, count: 3 }, ShardOrigin::Argument));
        // A resubmitted single index: the array is one task (MIN = MAX = 1), the shard is still 1.
        let resubmit = env(&[("SLURM_ARRAY_TASK_ID", "1"), ("SLURM_ARRAY_TASK_MIN", "1"), ("SLURM_ARRAY_TASK_COUNT", "1"), ("SLURM_ARRAY_JOB_ID", "77")]);
        assert_eq!(Shard::resolve(None, 3, 0, &resubmit).unwrap(), (Shard { index: 1, count: 3 }, ShardOrigin::Slurm("77".into())));
        // Arrays numbered from 1.
        assert_eq!(Shard::resolve(None, 3, 1, env(&[("SLURM_ARRAY_TASK_ID", "3")])).unwrap().0, Shard { index: 2, count: 3 });
        assert_eq!(Shard::resolve(None, 4, 0, env(&[("JOB_COMPLETION_INDEX", "3")])).unwrap(), (Shard { index: 3, count: 4 }, ShardOrigin::Kubernetes));
        assert_eq!(Shard::resolve(None, 1, 0, &none).unwrap().1, ShardOrigin::Single);
    }

    #[test]
    fn impossible_indices_say_what_to_submit() {
        // (--shard, --shards, --shard-offset, environment, what the error says)
        type Case<'a> = (Option<usize>, usize, usize, Vec<(&'a str, &'a str)>, &'a str);
        let cases: Vec<Case> = vec![
            (None, 3, 0, vec![], "pass --shard I"),
            (Some(3), 3, 0, vec![], "shards are 0 to 2"),
            (None, 0, 0, vec![], "at least 1"),
            (None, 3, 0, vec![("SLURM_ARRAY_TASK_ID", "3")], "submit --array=0-2"),
            (None, 3, 1, vec![("SLURM_ARRAY_TASK_ID", "0")], "below --shard-offset 1"),
            (None, 3, 0, vec![("SLURM_ARRAY_TASK_ID", "x")], "not a task index"),
            (None, 2, 0, vec![("JOB_COMPLETION_INDEX", "2")], "completions to 2"),
        ];
        for (index, count, offset, vars, want) in cases {
            let err = Shard::resolve(index, count, offset, env(&vars)).unwrap_err().to_string();
            assert!(err.contains(want), "{err}");
        }
    }
}
