//! Outputs are written under a temporary name and renamed when complete, so a killed or failed
//! run never leaves a file that looks finished.

use crate::error::{PipelineError, Result};
use std::path::{Path, PathBuf};

/// A file being written to `<final>.partial`; [`AtomicFile::commit`] renames it, dropping it
/// without committing deletes it.
#[derive(Debug)]
pub struct AtomicFile {
    final_path: PathBuf,
    tmp_path: PathBuf,
    committed: bool,
}

impl AtomicFile {
    /// Creates `<path>.partial` for writing.
    pub fn create(path: &Path) -> Result<(Self, std::fs::File)> {
        let mut tmp = path.as_os_str().to_owned();
        tmp.push(".partial");
        let tmp_path = PathBuf::from(tmp);
        // Named as the file it would have become: the temporary name means nothing to the reader.
        let file = std::fs::File::create(&tmp_path).map_err(|e| PipelineError::output(path, e))?;
        Ok((AtomicFile { final_path: path.to_path_buf(), tmp_path, committed: false }, file))
    }

    /// Renames the finished file to its final name.
    pub fn commit(mut self) -> Result<PathBuf> {
        std::fs::rename(&self.tmp_path, &self.final_path).map_err(|e| PipelineError::output(&self.final_path, e))?;
        self.committed = true;
        Ok(self.final_path.clone())
    }
}

impl Drop for AtomicFile {
    fn drop(&mut self) {
        if !self.committed {
            let _ = std::fs::remove_file(&self.tmp_path);
        }
    }
}

/// Writes an RGB8 image as PNG, atomically.
#[cfg(feature = "heatmaps")]
pub fn write_png(path: &Path, width: u32, height: u32, rgb: &[u8]) -> Result<PathBuf> {
    let (atomic, file) = AtomicFile::create(path)?;
    let mut encoder = png::Encoder::new(std::io::BufWriter::new(file), width, height);
    encoder.set_color(png::ColorType::Rgb);
    encoder.set_depth(png::BitDepth::Eight);
    let mut writer = encoder.write_header().map_err(|e| PipelineError::output(path, e))?;
    writer.write_image_data(rgb).map_err(|e| PipelineError::output(path, e))?;
    writer.finish().map_err(|e| PipelineError::output(path, e))?;
    atomic.commit()
}

/// A job's output folder, written so that a finished run is recognisable: every file is made
/// in a staging folder `<out>/.partial-<pid>.<n>/` and moved into `<out>` only when all are done,
/// the Parquet file last. `embeddings.parquet` in `<out>` therefore means the run that wrote it
/// finished, and the pictures beside it are that run's.
///
/// Killed runs (even by SIGKILL) leave only their staging folder, which the next run in the
/// same folder removes; failed runs remove theirs. One run at a time per output folder: a run
/// holds an exclusive lock on the folder (`flock`, released by the kernel when the process
/// dies), and a second one is refused while it does.
#[derive(Debug)]
pub struct Staging {
    out: PathBuf,
    dir: PathBuf,
    done: bool,
    /// The output folder, opened and locked for the run (None where folders cannot be opened
    /// as files: not on Unix).
    _lock: Option<std::fs::File>,
}

/// The prefix of staging folders.
const STAGING_PREFIX: &str = ".partial-";

impl Staging {
    /// Creates `out` if needed, locks it, removes staging folders left there by killed runs and
    /// makes a fresh one.
    pub fn new(out: &Path) -> Result<Self> {
        std::fs::create_dir_all(out).map_err(|e| PipelineError::output(out, e))?;
        let lock = std::fs::File::open(out).ok();
        if let Some(folder) = &lock {
            match folder.try_lock() {
                Ok(()) => {}
                Err(std::fs::TryLockError::WouldBlock) => {
                    return Err(PipelineError::output(
                        out,
                        "another run is writing into this folder (it holds the folder's lock); wait for it to end or choose another output folder",
                    ))
                }
                // File systems without locks (some network mounts): go on unlocked.
                Err(std::fs::TryLockError::Error(_)) => {}
            }
        }
        for entry in std::fs::read_dir(out).map_err(|e| PipelineError::output(out, e))?.flatten() {
            if entry.file_name().to_str().is_some_and(|n| n.starts_with(STAGING_PREFIX)) {
                let _ = std::fs::remove_dir_all(entry.path());
            }
        }
        static RUNS: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
        let n = RUNS.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let dir = out.join(format!("{STAGING_PREFIX}{}.{n}", std::process::id()));
        std::fs::create_dir(&dir).map_err(|e| PipelineError::output(&dir, e))?;
        Ok(Staging { out: out.to_path_buf(), dir, done: false, _lock: lock })
    }

    /// Where the run writes.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Moves the staged outputs into the output folder: first the previous run's outputs
    /// (`stale`: `embeddings.parquet` first) are removed, then `pictures` are moved, then
    /// `parquet`. Returns the final paths, Parquet first.
    pub fn publish(mut self, parquet: &Path, pictures: &[PathBuf], stale: &dyn Fn(&str) -> bool) -> Result<Vec<PathBuf>> {
        let final_of = |p: &Path| self.out.join(p.file_name().expect("staged outputs are files"));
        let parquet_final = final_of(parquet);
        match std::fs::remove_file(&parquet_final) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => return Err(PipelineError::output(&parquet_final, e)),
            _ => {}
        }
        for entry in std::fs::read_dir(&self.out).map_err(|e| PipelineError::output(&self.out, e))?.flatten() {
            if entry.file_name().to_str().is_some_and(stale) && entry.path().is_file() {
                std::fs::remove_file(entry.path()).map_err(|e| PipelineError::output(&entry.path(), e))?;
            }
        }
        let mut outputs = vec![parquet_final.clone()];
        for p in pictures {
            let to = final_of(p);
            std::fs::rename(p, &to).map_err(|e| PipelineError::output(&to, e))?;
            outputs.push(to);
        }
        std::fs::rename(parquet, &parquet_final).map_err(|e| PipelineError::output(&parquet_final, e))?;
        self.done = true;
        let _ = std::fs::remove_dir_all(&self.dir);
        Ok(outputs)
    }
}

impl Drop for Staging {
    fn drop(&mut self) {
        if !self.done {
            let _ = std::fs::remove_dir_all(&self.dir);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn folder(name: &str) -> PathBuf {
        let d = std::env::temp_dir().join(format!("haidef-atomic-{}-{name}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        d
    }

    fn is_pic(n: &str) -> bool {
        n == "a.png"
    }

    /// The previous run's Parquet file goes before anything of the new run arrives, so a
    /// publish that stops half-way (here: a picture cannot be moved) leaves no Parquet file,
    /// not the old one beside new pictures.
    #[test]
    fn publish_removes_the_old_parquet_first_and_moves_the_new_one_last() {
        let out = folder("order");
        std::fs::create_dir_all(out.join("b.png")).unwrap(); // a folder where a picture must go
        std::fs::write(out.join("embeddings.parquet"), "old").unwrap();
        std::fs::write(out.join("a.png"), "old").unwrap();
        let staging = Staging::new(&out).unwrap();
        let (parquet, a, b) = (staging.dir().join("embeddings.parquet"), staging.dir().join("a.png"), staging.dir().join("b.png"));
        for f in [&parquet, &a, &b] {
            std::fs::write(f, "new").unwrap();
        }
        assert!(staging.publish(&parquet, &[a, b], &is_pic).is_err());
        assert!(!out.join("embeddings.parquet").exists(), "the old Parquet file is gone, the new one not moved");
        assert_eq!(std::fs::read_to_string(out.join("a.png")).unwrap(), "new");
        let left: Vec<_> = std::fs::read_dir(&out).unwrap().map(|e| e.unwrap().file_name()).collect();
        assert!(left.iter().all(|n| !n.to_string_lossy().starts_with(STAGING_PREFIX)), "failed publish removed its staging folder: {left:?}");

        std::fs::remove_dir_all(out.join("b.png")).unwrap();
        let staging = Staging::new(&out).unwrap();
        let parquet = staging.dir().join("embeddings.parquet");
        std::fs::write(&parquet, "newer").unwrap();
        let outputs = staging.publish(&parquet, &[], &is_pic).unwrap();
        assert_eq!(outputs, vec![out.join("embeddings.parquet")]);
        assert!(!out.join("a.png").exists(), "the previous run's picture went with its Parquet file");
        std::fs::remove_dir_all(&out).unwrap();
    }

    /// One run at a time per folder: a second is refused while the first holds the folder, and
    /// stale staging folders are removed only by a run that holds it.
    #[test]
    fn a_second_run_into_a_busy_folder_is_refused() {
        let out = folder("lock");
        std::fs::create_dir_all(out.join(".partial-1.0")).unwrap();
        let first = Staging::new(&out).unwrap();
        assert!(!out.join(".partial-1.0").exists(), "a killed run's staging folder is removed");
        let err = Staging::new(&out).unwrap_err().to_string();
        assert!(err.contains("another run is writing into this folder"), "{err}");
        assert!(first.dir().is_dir(), "the refused run left the first one's staging folder alone");
        drop(first);
        let again = Staging::new(&out).unwrap();
        drop(again);
        std::fs::remove_dir_all(&out).unwrap();
    }
}
