//! `Slide`: a DICOM whole-slide image opened by the Rust reader, its levels and regions as
//! numpy arrays.

use crate::errors::library;
use haidef_wsi::wsi::{AssociatedKind, Auth, DicomWebOptions, OpenOptions, OutOfBounds, PatchGridOptions, PatchRows, Slide as WsiSlide};
use numpy::ndarray::Array3;
use numpy::{IntoPyArray, PyArray3};
use pyo3::exceptions::{PyTypeError, PyValueError};
use pyo3::prelude::*;
use pyo3::types::{PyDict, PyTuple};
use std::collections::VecDeque;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

/// A DICOM whole-slide image: a folder of DICOM files (one series) or one file of it, or a
/// series on a DICOMweb server.
///
/// Levels are numbered from 0, the full resolution. Coordinates passed to `read_region` are in
/// the pixels of the level read (OpenSlide takes level-0 coordinates instead; here level N's
/// pixel (x, y) is level N's own). A slide pickles as what reopens it (its path, or its URL and
/// DICOMweb options, credentials included), so it can be handed to PyTorch `DataLoader` workers.
#[pyclass(module = "haidef_wsi._native", frozen)]
pub struct Slide {
    /// None once closed.
    inner: RwLock<Option<Arc<WsiSlide>>>,
    origin: Origin,
}

/// Where a slide was opened from, and how: what reopens it.
#[derive(Clone)]
enum Origin {
    Path { path: PathBuf, series: Option<String> },
    Url { url: String, web: WebArgs },
}

/// The DICOMweb options as given in Python (kept to pickle the slide).
#[derive(Clone, Default)]
struct WebArgs {
    bearer_token: Option<String>,
    basic_auth: Option<(String, String)>,
    ca_cert: Option<PathBuf>,
    frames_per_request: Option<usize>,
    requests_in_flight: Option<usize>,
    timeout: Option<f64>,
}

impl WebArgs {
    /// The names of the options given, for errors.
    fn given(&self) -> Vec<&'static str> {
        let mut out = Vec::new();
        for (set, name) in [
            (self.bearer_token.is_some(), "bearer_token"),
            (self.basic_auth.is_some(), "basic_auth"),
            (self.ca_cert.is_some(), "ca_cert"),
            (self.frames_per_request.is_some(), "frames_per_request"),
            (self.requests_in_flight.is_some(), "requests_in_flight"),
            (self.timeout.is_some(), "timeout"),
        ] {
            if set {
                out.push(name);
            }
        }
        out
    }

    /// The client's options: the library's defaults where not given.
    fn options(&self) -> PyResult<DicomWebOptions> {
        let auth = match (&self.bearer_token, &self.basic_auth) {
            (Some(_), Some(_)) => return Err(PyValueError::new_err("give bearer_token or basic_auth, not both")),
            (Some(t), None) => Auth::Bearer(t.clone()),
            (None, Some((user, password))) => Auth::Basic { user: user.clone(), password: password.clone() },
            (None, None) => Auth::None,
        };
        let defaults = DicomWebOptions::default();
        let positive = |name: &str, v: Option<usize>, default: usize| match v {
            Some(0) => Err(PyValueError::new_err(format!("{name} must be at least 1"))),
            Some(n) => Ok(n),
            None => Ok(default),
        };
        let timeout = match self.timeout {
            Some(t) if t.is_finite() && t > 0.0 => Duration::from_secs_f64(t),
            Some(t) => return Err(PyValueError::new_err(format!("timeout is a positive number of seconds, not {t}"))),
            None => defaults.timeout,
        };
        Ok(DicomWebOptions {
            auth,
            ca_certificates: self.ca_cert.iter().cloned().collect(),
            frames_per_request: positive("frames_per_request", self.frames_per_request, defaults.frames_per_request)?,
            max_concurrent_requests: positive("requests_in_flight", self.requests_in_flight, defaults.max_concurrent_requests)?,
            timeout,
            ..defaults
        })
    }

    /// These options as keyword arguments of `Slide`.
    fn kwargs<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
        let d = PyDict::new(py);
        d.set_item("bearer_token", &self.bearer_token)?;
        d.set_item("basic_auth", &self.basic_auth)?;
        d.set_item("ca_cert", &self.ca_cert)?;
        d.set_item("frames_per_request", self.frames_per_request)?;
        d.set_item("requests_in_flight", self.requests_in_flight)?;
        d.set_item("timeout", self.timeout)?;
        Ok(d)
    }
}

/// `basic_auth` as `(user, password)` or `"user:password"`.
fn basic_auth(value: Option<&Bound<'_, PyAny>>) -> PyResult<Option<(String, String)>> {
    let Some(value) = value.filter(|v| !v.is_none()) else { return Ok(None) };
    if let Ok(pair) = value.extract::<(String, String)>() {
        return Ok(Some(pair));
    }
    match value.extract::<String>().ok().and_then(|s| s.split_once(':').map(|(u, p)| (u.to_string(), p.to_string()))) {
        Some(pair) => Ok(Some(pair)),
        None => Err(PyTypeError::new_err("basic_auth is (user, password) or \"user:password\"")),
    }
}

impl Slide {
    /// The Rust slide (for the jobs too), or the error that it was closed.
    pub(crate) fn inner(&self) -> PyResult<Arc<WsiSlide>> {
        let slot = self.inner.read().unwrap_or_else(|e| e.into_inner());
        slot.clone().ok_or_else(|| PyValueError::new_err(format!("the slide {} is closed; open it again", self.source())))
    }

    /// The path or URL it was opened from, for messages.
    fn source(&self) -> String {
        match &self.origin {
            Origin::Path { path, .. } => path.display().to_string(),
            Origin::Url { url, .. } => url.clone(),
        }
    }
}

#[pymethods]
impl Slide {
    /// Opens the slide at `source`: a folder holding one series (or several: then `series`
    /// names the SeriesInstanceUID), one of its files, or a DICOMweb URL
    /// (`http(s)://host/<root>/studies/<study>/series/<series>`, or a study URL holding one
    /// slide). DICOMweb options: `bearer_token` or `basic_auth` (`(user, password)`), `ca_cert`
    /// (a PEM file of an in-house certificate authority), `frames_per_request` (64),
    /// `requests_in_flight` (4), `timeout` (seconds per request).
    #[new]
    #[pyo3(signature = (source, *, series = None, bearer_token = None, basic_auth = None, ca_cert = None, frames_per_request = None, requests_in_flight = None, timeout = None))]
    #[allow(clippy::too_many_arguments)]
    fn new(
        py: Python<'_>,
        source: &Bound<'_, PyAny>,
        series: Option<String>,
        bearer_token: Option<String>,
        basic_auth: Option<&Bound<'_, PyAny>>,
        ca_cert: Option<PathBuf>,
        frames_per_request: Option<usize>,
        requests_in_flight: Option<usize>,
        timeout: Option<f64>,
    ) -> PyResult<Self> {
        let web = WebArgs { bearer_token, basic_auth: self::basic_auth(basic_auth)?, ca_cert, frames_per_request, requests_in_flight, timeout };
        let url = source.extract::<String>().ok().filter(|s| s.starts_with("http://") || s.starts_with("https://"));
        let origin = match url {
            Some(url) => {
                if series.is_some() {
                    return Err(PyValueError::new_err("series applies to folders; a DICOMweb URL names its series (…/studies/<study>/series/<series>)"));
                }
                Origin::Url { url, web }
            }
            None => {
                let path = source.extract::<PathBuf>().map_err(|_| {
                    PyTypeError::new_err(format!(
                        "source is a path or a DICOMweb URL; got a {}",
                        source.get_type().name().map(|n| n.to_string()).unwrap_or_default()
                    ))
                })?;
                if let Some(first) = web.given().first() {
                    return Err(PyValueError::new_err(format!("{first} applies to DICOMweb URLs (http:// or https://), not to the path {}", path.display())));
                }
                Origin::Path { path, series }
            }
        };
        let opened = match &origin {
            Origin::Path { path, series } => {
                let options = OpenOptions { series_instance_uid: series.clone(), ..Default::default() };
                py.detach(|| crate::pool::run(|| WsiSlide::open_with(path, &options)))
            }
            Origin::Url { url, web } => {
                let options = web.options()?;
                py.detach(|| crate::pool::run(|| WsiSlide::open_dicomweb(url, &options)))
            }
        }
        .map_err(library)?;
        Ok(Slide { inner: RwLock::new(Some(Arc::new(opened))), origin })
    }

    /// Opens the slide at `source`; the same as `Slide(source, **options)`.
    #[staticmethod]
    #[pyo3(signature = (source, **options))]
    fn open<'py>(py: Python<'py>, source: &Bound<'py, PyAny>, options: Option<&Bound<'py, PyDict>>) -> PyResult<Bound<'py, PyAny>> {
        py.get_type::<Slide>().call((source,), options)
    }

    /// The path the slide was opened from (None for a DICOMweb slide).
    #[getter]
    fn path(&self) -> Option<PathBuf> {
        match &self.origin {
            Origin::Path { path, .. } => Some(path.clone()),
            Origin::Url { .. } => None,
        }
    }

    /// The DICOMweb URL the slide was opened from (None for files).
    #[getter]
    fn url(&self) -> Option<String> {
        match &self.origin {
            Origin::Url { url, .. } => Some(url.clone()),
            Origin::Path { .. } => None,
        }
    }

    /// The StudyInstanceUID.
    #[getter]
    fn study_instance_uid(&self) -> PyResult<String> {
        Ok(self.inner()?.study_instance_uid().to_string())
    }

    /// The SeriesInstanceUID.
    #[getter]
    fn series_instance_uid(&self) -> PyResult<String> {
        Ok(self.inner()?.series_instance_uid().to_string())
    }

    /// Number of pyramid levels.
    #[getter]
    fn level_count(&self) -> PyResult<usize> {
        Ok(self.inner()?.levels().len())
    }

    /// (width, height) of each level, in its own pixels, level 0 first.
    #[getter]
    fn level_dimensions(&self) -> PyResult<Vec<(u32, u32)>> {
        Ok(self.inner()?.levels().iter().map(|l| (l.width(), l.height())).collect())
    }

    /// Level 0's width divided by each level's: 1.0 for level 0.
    #[getter]
    fn level_downsamples(&self) -> PyResult<Vec<f64>> {
        let slide = self.inner()?;
        let levels = slide.levels();
        let w0 = levels.first().map_or(1.0, |l| f64::from(l.width()));
        Ok(levels.iter().map(|l| w0 / f64::from(l.width())).collect())
    }

    /// Micrometres per pixel of each level, None where the file does not say.
    #[getter]
    fn level_mpp(&self) -> PyResult<Vec<Option<f64>>> {
        Ok(self.inner()?.levels().iter().map(|l| l.mpp()).collect())
    }

    /// (width, height) of each level's tiles (DICOM frames).
    #[getter]
    fn level_tile_size(&self) -> PyResult<Vec<(u32, u32)>> {
        Ok(self.inner()?.levels().iter().map(|l| l.tile_size()).collect())
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
        let slide = self.inner()?;
        let policy = if pad { OutOfBounds::PadWhite } else { OutOfBounds::Error };
        let image =
            py.detach(move || crate::pool::run(move || slide.level(level).and_then(|l| l.read_region_with(x, y, width, height, policy)))).map_err(library)?;
        let array = Array3::from_shape_vec((image.height as usize, image.width as usize, 3), image.data).map_err(library)?;
        Ok(array.into_pyarray(py))
    }

    /// The associated images the slide has, by kind: `LABEL`, `OVERVIEW`, `THUMBNAIL`.
    #[getter]
    fn associated_images(&self) -> PyResult<Vec<&'static str>> {
        Ok(self.inner()?.associated().iter().map(|a| a.kind.name()).collect())
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
        let slide = self.inner()?;
        let Some(found) = slide.associated_image(wanted) else {
            let has = self.associated_images()?;
            return Err(PyValueError::new_err(format!(
                "{} has no {} image; it has: {}",
                self.source(),
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
        let slide = self.inner()?;
        let lv = slide.level(level).map_err(library)?;
        let grid = lv.patch_grid(PatchGridOptions { size, stride: stride.unwrap_or(size) }).map_err(library)?;
        Ok(Patches { cols: grid.cols(), rows: grid.rows(), size, reader: Mutex::new(grid.rows_iter()), pending: Mutex::new(VecDeque::new()) })
    }

    /// Warnings the reader collected while opening (skipped files, odd tags).
    #[getter]
    fn warnings(&self) -> PyResult<Vec<String>> {
        Ok(self.inner()?.warnings().to_vec())
    }

    /// Pickles as what reopens the slide: `functools.partial(Slide, **options)(source)`.
    fn __reduce__<'py>(slf: &Bound<'py, Self>) -> PyResult<(Bound<'py, PyAny>, Bound<'py, PyTuple>)> {
        let py = slf.py();
        let class = slf.getattr("__class__")?;
        let this = slf.get();
        let (source, kwargs) = match &this.origin {
            Origin::Path { path, series } => {
                let d = PyDict::new(py);
                d.set_item("series", series)?;
                (path.clone().into_pyobject(py)?.into_any(), d)
            }
            Origin::Url { url, web } => (url.clone().into_pyobject(py)?.into_any(), web.kwargs(py)?),
        };
        let opener = py.import("functools")?.getattr("partial")?.call((class,), Some(&kwargs))?;
        Ok((opener, PyTuple::new(py, [source])?))
    }

    /// Closes the slide: its files, connections and caches are let go (a `patches()` iterator
    /// made before keeps what it reads). Any later use raises ValueError. Closing twice is
    /// harmless; `with Slide(...) as s:` closes at the end of the block.
    fn close(&self) {
        self.inner.write().unwrap_or_else(|e| e.into_inner()).take();
    }

    /// Whether `close()` was called.
    #[getter]
    fn closed(&self) -> bool {
        self.inner.read().unwrap_or_else(|e| e.into_inner()).is_none()
    }

    fn __enter__(slf: Bound<'_, Self>) -> Bound<'_, Self> {
        slf
    }

    #[pyo3(signature = (*_exc))]
    fn __exit__(&self, _exc: &Bound<'_, PyTuple>) -> bool {
        self.close();
        false
    }

    fn __repr__(&self) -> String {
        match self.inner() {
            Ok(slide) => {
                let dims: Vec<String> = slide.levels().iter().map(|l| format!("{}x{}", l.width(), l.height())).collect();
                format!("Slide({:?}, levels=[{}])", self.source(), dims.join(", "))
            }
            Err(_) => format!("Slide({:?}, closed)", self.source()),
        }
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
