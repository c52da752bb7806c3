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
