//! A real single-node Slurm for tests: `tests/slurm/cluster.sh` starts munged, slurmctld and
//! slurmd under a temporary folder (Debian's slurm-wlm and munge, installed by .ci/run) and
//! stops them when this is dropped.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

pub struct Slurm {
    dir: PathBuf,
    conf: PathBuf,
}

impl Slurm {
    /// Starts the cluster, or returns None (with a message) where Slurm is not installed and
    /// this is not CI (where `.ci/run` installs it, so its absence is a failure).
    pub fn start() -> Option<Slurm> {
        let have = ["slurmctld", "slurmd", "munged", "sbatch"]
            .iter()
            .all(|b| Command::new("sh").args(["-c", &format!("command -v {b}")]).output().is_ok_and(|o| o.status.success()));
        if !have {
            assert!(std::env::var_os("CI").is_none(), "CI must install slurm-wlm and munge (.ci/run does)");
            eprintln!("Slurm is not installed (apt install slurm-wlm munge): Slurm tests not run");
            return None;
        }
        let dir = std::env::temp_dir().join(format!("haidef-slurm-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/slurm/cluster.sh");
        let out = Command::new("bash").arg(&script).arg("start").arg(&dir).output().unwrap();
        let slurm = Slurm { conf: dir.join("slurm.conf"), dir };
        assert!(out.status.success(), "Slurm did not start: {}", String::from_utf8_lossy(&out.stderr));
        Some(slurm)
    }

    /// A Slurm command pointed at this cluster.
    pub fn command(&self, program: &str) -> Command {
        let mut c = Command::new(program);
        c.env("SLURM_CONF", &self.conf);
        c
    }

    /// Submits a batch script; returns the job id.
    pub fn sbatch(&self, args: &[&str]) -> String {
        let out = self.command("sbatch").arg("--parsable").args(args).output().unwrap();
        assert!(out.status.success(), "sbatch {args:?}: {}", String::from_utf8_lossy(&out.stderr));
        String::from_utf8_lossy(&out.stdout).trim().split(';').next().unwrap().to_string()
    }

    /// Job ids (JOB_TASK) still pending or running for `job`.
    pub fn queued(&self, job: &str) -> Vec<String> {
        let out = self.command("squeue").args(["-h", "-r", "-o", "%i %t", "-j", job]).output().unwrap();
        String::from_utf8_lossy(&out.stdout).lines().map(str::to_string).collect()
    }

    /// Waits until no task of `job` is queued or running.
    pub fn wait(&self, job: &str, timeout: Duration) {
        let start = Instant::now();
        while !self.queued(job).is_empty() {
            assert!(start.elapsed() < timeout, "job {job} still queued after {timeout:?}: {:?}; logs in {}", self.queued(job), self.dir.display());
            std::thread::sleep(Duration::from_millis(250));
        }
    }

    /// Cancels `target` (a job or JOB_TASK), as a user does (SIGTERM, then SIGKILL after KillWait).
    pub fn scancel(&self, target: &str) {
        let out = self.command("scancel").arg(target).output().unwrap();
        assert!(out.status.success(), "scancel {target}: {}", String::from_utf8_lossy(&out.stderr));
    }

    /// `JobState` and `ExitCode` of a finished task (kept by slurmctld for MinJobAge, 300 s).
    pub fn state(&self, task: &str) -> (String, String) {
        let out = self.command("scontrol").args(["show", "job", task]).output().unwrap();
        let text = String::from_utf8_lossy(&out.stdout).to_string();
        let field = |name: &str| text.split_whitespace().find_map(|w| w.strip_prefix(&format!("{name}="))).unwrap_or("?").to_string();
        (field("JobState"), field("ExitCode"))
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }
}

impl Drop for Slurm {
    fn drop(&mut self) {
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/slurm/cluster.sh");
        let _ = Command::new("bash").arg(&script).arg("stop").arg(&self.dir).output();
        if !std::thread::panicking() {
            let _ = std::fs::remove_dir_all(&self.dir);
        }
    }
}
