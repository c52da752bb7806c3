//! Outputs: the Parquet sink every job writes through, and files that are finished or absent
//! (written under a temporary name, renamed when complete; a job's output folder published at
//! once).

pub(crate) mod atomic;
pub(crate) mod parquet;
