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
        let file = std::fs::File::create(&tmp_path).map_err(|e| PipelineError::output(&tmp_path, e))?;
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
/// in a staging folder `<out>/.partial-<pid>/` and moved into `<out>` only when all are done,
/// the Parquet file last. `embeddings.parquet` in `<out>` therefore means the run that wrote it
/// finished, and the pictures beside it are that run's.
///
/// Killed runs (even by SIGKILL) leave only their staging folder, which the next run in the
/// same folder removes; failed runs remove theirs. One job at a time per output folder.
#[derive(Debug)]
pub struct Staging {
    out: PathBuf,
    dir: PathBuf,
    done: bool,
}

/// The prefix of staging folders.
const STAGING_PREFIX: &str = ".partial-";

impl Staging {
    /// Creates `out` if needed, removes staging folders left there by killed runs and makes a
    /// fresh one.
    pub fn new(out: &Path) -> Result<Self> {
        std::fs::create_dir_all(out).map_err(|e| PipelineError::output(out, e))?;
        for entry in std::fs::read_dir(out).map_err(|e| PipelineError::output(out, e))?.flatten() {
            if entry.file_name().to_str().is_some_and(|n| n.starts_with(STAGING_PREFIX)) {
                let _ = std::fs::remove_dir_all(entry.path());
            }
        }
        let dir = out.join(format!("{STAGING_PREFIX}{}", std::process::id()));
        std::fs::create_dir(&dir).map_err(|e| PipelineError::output(&dir, e))?;
        Ok(Staging { out: out.to_path_buf(), dir, done: false })
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
