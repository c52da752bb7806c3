//! `Slide`: a DICOM whole-slide image opened by the Rust reader, its levels and regions as
//! numpy arrays.

use crate::errors::library;
use haidef_wsi::wsi::{OutOfBounds, Slide as WsiSlide};
use numpy::ndarray::Array3;
use numpy::{IntoPyArray, PyArray3};
use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;
use pyo3::types::PyTuple;
use std::path::PathBuf;
use std::sync::Arc;

/// A DICOM whole-slide image: a folder of DICOM files (one series) or one file of it.
///
/// Levels are numbered from 0, the full resolution. Coordinates passed to `read_region` are in
/// the pixels of the level read (OpenSlide takes level-0 coordinates instead; here level N's
/// pixel (x, y) is level N's own). A slide pickles as the path it was opened from, so it can be
/// handed to PyTorch `DataLoader` workers.
#[pyclass(module = "haidef_wsi._native", frozen)]
pub struct Slide {
    inner: Arc<WsiSlide>,
    path: PathBuf,
}

#[pymethods]
impl Slide {
    /// Opens the slide at `path` (a folder holding one series, or one of its files).
    #[new]
    fn new(py: Python<'_>, path: PathBuf) -> PyResult<Self> {
        let opened = py.detach(|| WsiSlide::open(&path)).map_err(library)?;
        Ok(Slide { inner: Arc::new(opened), path })
    }

    /// Opens the slide at `path`; the same as `Slide(path)`.
    #[staticmethod]
    fn open(py: Python<'_>, path: PathBuf) -> PyResult<Self> {
        Slide::new(py, path)
    }

    /// The path the slide was opened from.
    #[getter]
    fn path(&self) -> PathBuf {
        self.path.clone()
    }

    /// The StudyInstanceUID.
    #[getter]
    fn study_instance_uid(&self) -> String {
        self.inner.study_instance_uid().to_string()
    }

    /// The SeriesInstanceUID.
    #[getter]
    fn series_instance_uid(&self) -> String {
        self.inner.series_instance_uid().to_string()
    }

    /// Number of pyramid levels.
    #[getter]
    fn level_count(&self) -> usize {
        self.inner.levels().len()
    }

    /// (width, height) of each level, in its own pixels, level 0 first.
    #[getter]
    fn level_dimensions(&self) -> Vec<(u32, u32)> {
        self.inner.levels().iter().map(|l| (l.width(), l.height())).collect()
    }

    /// Level 0's width divided by each level's: 1.0 for level 0.
    #[getter]
    fn level_downsamples(&self) -> Vec<f64> {
        let levels = self.inner.levels();
        let w0 = levels.first().map_or(1.0, |l| f64::from(l.width()));
        levels.iter().map(|l| w0 / f64::from(l.width())).collect()
    }

    /// Micrometres per pixel of each level, None where the file does not say.
    #[getter]
    fn level_mpp(&self) -> Vec<Option<f64>> {
        self.inner.levels().iter().map(|l| l.mpp()).collect()
    }

    /// (width, height) of each level's tiles (DICOM frames).
    #[getter]
    fn level_tile_size(&self) -> Vec<(u32, u32)> {
        self.inner.levels().iter().map(|l| l.tile_size()).collect()
    }

    /// Reads the `width` × `height` rectangle at (`x`, `y`) of `level`, in that level's pixels,
    /// as a `(height, width, 3)` uint8 array of RGB. Outside the level it is an error, unless
    /// `pad` is true: then the part outside is white.
    #[pyo3(signature = (x, y, width, height, level = 0, pad = false))]
    #[allow(clippy::too_many_arguments)]
    fn read_region<'py>(&self, py: Python<'py>, x: i64, y: i64, width: u32, height: u32, level: usize, pad: bool) -> PyResult<Bound<'py, PyArray3<u8>>> {
        if width == 0 || height == 0 {
            return Err(PyValueError::new_err(format!("read_region: width and height must be at least 1 (got {width} x {height})")));
        }
        let slide = self.inner.clone();
        let policy = if pad { OutOfBounds::PadWhite } else { OutOfBounds::Error };
        let image = py.detach(move || slide.level(level).and_then(|l| l.read_region_with(x, y, width, height, policy))).map_err(library)?;
        let array = Array3::from_shape_vec((image.height as usize, image.width as usize, 3), image.data).map_err(library)?;
        Ok(array.into_pyarray(py))
    }

    /// Warnings the reader collected while opening (skipped files, odd tags).
    #[getter]
    fn warnings(&self) -> Vec<String> {
        self.inner.warnings().to_vec()
    }

    fn __reduce__<'py>(slf: &Bound<'py, Self>) -> PyResult<(Bound<'py, PyAny>, Bound<'py, PyTuple>)> {
        let class = slf.getattr("__class__")?;
        let args = PyTuple::new(slf.py(), [slf.get().path.clone()])?;
        Ok((class, args))
    }

    fn __repr__(&self) -> String {
        let dims: Vec<String> = self.inner.levels().iter().map(|l| format!("{}x{}", l.width(), l.height())).collect();
        format!("Slide({:?}, levels=[{}])", self.path.display().to_string(), dims.join(", "))
    }
}
