//! `Slide`: a DICOM whole-slide image opened by the Rust reader, its levels and regions as
//! numpy arrays.

use crate::errors::library;
use haidef_wsi::wsi::{AssociatedKind, OutOfBounds, PatchGridOptions, PatchRows, Slide as WsiSlide};
use numpy::ndarray::Array3;
use numpy::{IntoPyArray, PyArray3};
use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;
use pyo3::types::PyTuple;
use std::collections::VecDeque;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

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

impl Slide {
    /// The Rust slide, for the jobs.
    pub(crate) fn inner(&self) -> &WsiSlide {
        &self.inner
    }
}

#[pymethods]
impl Slide {
    /// Opens the slide at `path` (a folder holding one series, or one of its files).
    #[new]
    fn new(py: Python<'_>, path: PathBuf) -> PyResult<Self> {
        let opened = py.detach(|| crate::pool::run(|| WsiSlide::open(&path))).map_err(library)?;
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
        let image =
            py.detach(move || crate::pool::run(move || slide.level(level).and_then(|l| l.read_region_with(x, y, width, height, policy)))).map_err(library)?;
        let array = Array3::from_shape_vec((image.height as usize, image.width as usize, 3), image.data).map_err(library)?;
        Ok(array.into_pyarray(py))
    }

    /// The associated images the slide has, by kind: `LABEL`, `OVERVIEW`, `THUMBNAIL`.
    #[getter]
    fn associated_images(&self) -> Vec<&'static str> {
        self.inner.associated().iter().map(|a| a.kind.name()).collect()
    }

    /// The whole associated image `kind` (`"label"`, `"overview"` or `"thumbnail"`, any case) as
    /// a `(height, width, 3)` uint8 array of RGB.
    fn read_associated<'py>(&self, py: Python<'py>, kind: &str) -> PyResult<Bound<'py, PyArray3<u8>>> {
        let wanted = match kind.to_ascii_uppercase().as_str() {
            "LABEL" => AssociatedKind::Label,
            "OVERVIEW" | "MACRO" => AssociatedKind::Overview,
            "THUMBNAIL" => AssociatedKind::Thumbnail,
            _ => return Err(PyValueError::new_err(format!("associated image kind {kind:?}: expected \"label\", \"overview\" or \"thumbnail\""))),
        };
        let Some(found) = self.inner.associated_image(wanted) else {
            let has = self.associated_images();
            return Err(PyValueError::new_err(format!(
                "{} has no {} image; it has: {}",
                self.path.display(),
                wanted.name(),
                if has.is_empty() { "none".to_string() } else { has.join(", ") }
            )));
        };
        let level = found.image.clone();
        let image = py.detach(move || crate::pool::run(move || level.read_all())).map_err(library)?;
        let array = Array3::from_shape_vec((image.height as usize, image.width as usize, 3), image.data).map_err(library)?;
        Ok(array.into_pyarray(py))
    }

    /// The patch grid of `level`: square `size` × `size` patches every `stride` pixels (default:
    /// `size`, no overlap), row by row, as `(x, y, patch)` with x, y the patch's origin in the
    /// level's pixels and patch a `(size, size, 3)` uint8 array. Only whole patches: the grid
    /// stops short of a right or bottom edge narrower than a patch. Frames are decoded a band
    /// of rows at a time, in parallel, with the GIL released.
    #[pyo3(signature = (level = 0, size = 224, stride = None))]
    fn patches(&self, level: usize, size: u32, stride: Option<u32>) -> PyResult<Patches> {
        let lv = self.inner.level(level).map_err(library)?;
        let grid = lv.patch_grid(PatchGridOptions { size, stride: stride.unwrap_or(size) }).map_err(library)?;
        Ok(Patches { cols: grid.cols(), rows: grid.rows(), size, reader: Mutex::new(grid.rows_iter()), pending: Mutex::new(VecDeque::new()) })
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

/// One patch as Python gets it: `(x, y, patch)`.
type PatchItem<'py> = (u32, u32, Bound<'py, PyArray3<u8>>);

/// The patches of one level's grid, row by row: an iterator of `(x, y, patch)`.
#[pyclass(module = "haidef_wsi._native", frozen)]
pub struct Patches {
    cols: u32,
    rows: u32,
    size: u32,
    reader: Mutex<PatchRows>,
    pending: Mutex<VecDeque<(u32, u32, Vec<u8>)>>,
}

#[pymethods]
impl Patches {
    /// (columns, rows) of the grid.
    #[getter]
    fn shape(&self) -> (u32, u32) {
        (self.cols, self.rows)
    }

    fn __len__(&self) -> usize {
        self.cols as usize * self.rows as usize
    }

    fn __iter__(slf: PyRef<'_, Self>) -> PyRef<'_, Self> {
        slf
    }

    fn __next__<'py>(&self, py: Python<'py>) -> PyResult<Option<PatchItem<'py>>> {
        loop {
            let next = self.pending.lock().unwrap_or_else(|e| e.into_inner()).pop_front();
            if let Some((x, y, rgb)) = next {
                let side = self.size as usize;
                let array = Array3::from_shape_vec((side, side, 3), rgb).map_err(library)?;
                return Ok(Some((x, y, array.into_pyarray(py))));
            }
            let row = py.detach(|| crate::pool::run(|| self.reader.lock().unwrap_or_else(|e| e.into_inner()).next()));
            match row {
                None => return Ok(None),
                Some(Err(e)) => return Err(library(e)),
                Some(Ok(patches)) => {
                    let mut pending = self.pending.lock().unwrap_or_else(|e| e.into_inner());
                    pending.extend(patches.into_iter().map(|p| (p.x, p.y, p.into_rgb())));
                }
            }
        }
    }
}
