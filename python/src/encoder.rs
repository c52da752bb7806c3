//! `Encoder`: a model of the registry by name, embedding numpy batches with the model's own
//! declared preprocessing (the same batching core as the Rust examples).

use crate::errors::library;
use haidef_wsi::encoders::candle::DType;
use haidef_wsi::encoders::{parse_device, registry, Batcher, Encoder as RustEncoder, ImageRef};
use haidef_wsi::{Clip, Input};
use numpy::ndarray::Array2;
use numpy::{IntoPyArray, PyArray2, PyArrayDyn, PyArrayMethods, PyUntypedArrayMethods};
use pyo3::exceptions::{PyTypeError, PyValueError};
use pyo3::prelude::*;
use pyo3::types::PyString;
use std::path::PathBuf;
use std::sync::Mutex;

/// The names of the models the library knows, the default first.
#[pyfunction]
pub fn models() -> Vec<String> {
    registry::models().iter().map(|m| m.name.to_string()).collect()
}

/// A foundation-model encoder: `Encoder("path-foundation", weights=None, device="cpu")`.
///
/// Without `weights` the model's untrained, seeded stand-in runs (with a warning): right shape,
/// right preprocessing, no learned features. `embed` takes a numpy batch `(N, H, W, C)` (or one
/// image `(H, W, C)`) of uint8, uint16 or float32 and gives `(N, D)` float32.
#[pyclass(module = "haidef_wsi._native", frozen)]
pub struct Encoder {
    name: String,
    model: Box<dyn RustEncoder>,
    batcher: Mutex<Batcher>,
    batch_size: usize,
}

/// Samples of one batch, copied out of the numpy array (so the GIL can be released while the
/// model runs and no Python thread can change them meanwhile).
enum Owned {
    U8(Vec<u8>),
    U16(Vec<u16>),
    F32(Vec<f32>),
}

impl Encoder {
    /// The Rust model, for the jobs.
    pub(crate) fn model(&self) -> &dyn RustEncoder {
        self.model.as_ref()
    }

    /// The model's name in the registry.
    pub(crate) fn registry_name(&self) -> &str {
        &self.name
    }

    /// Images per batch.
    pub(crate) fn batch_size(&self) -> usize {
        self.batch_size
    }

    /// `refs` embedded `batch_size` at a time with the model's declared preprocessing:
    /// `refs.len() × D` floats, row by row.
    fn embed_refs(&self, refs: &[ImageRef<'_>]) -> haidef_wsi::encoders::Result<Vec<f32>> {
        let mut batcher = self.batcher.lock().unwrap_or_else(|e| e.into_inner());
        let mut out = Vec::with_capacity(refs.len() * self.model.embedding_dim());
        for chunk in refs.chunks(self.batch_size) {
            let batch = batcher.pack(chunk)?;
            out.extend(self.model.embed(&batch)?.flatten_all()?.to_vec1::<f32>()?);
        }
        Ok(out)
    }
}

#[pymethods]
impl Encoder {
    #[new]
    #[pyo3(signature = (model = "path-foundation", weights = None, device = "cpu", batch_size = 32))]
    fn new(py: Python<'_>, model: &str, weights: Option<PathBuf>, device: &str, batch_size: usize) -> PyResult<Self> {
        if batch_size == 0 {
            return Err(PyValueError::new_err("batch_size must be at least 1"));
        }
        let entry = registry::find(model).map_err(|e| PyValueError::new_err(e.to_string()))?;
        let device = parse_device(device).map_err(|e| PyValueError::new_err(e.to_string()))?;
        let name = entry.name.to_string();
        let loaded = py.detach(|| crate::pool::run(|| entry.open(weights.as_deref(), &device, DType::F32))).map_err(library)?;
        if !loaded.is_trained() {
            let warning = py.get_type::<pyo3::exceptions::PyUserWarning>();
            PyErr::warn(py, &warning, &std::ffi::CString::new(format!("no weights given: {name} runs as an untrained, seeded stand-in (right shape and preprocessing, no learned features); pass weights= for real embeddings")).expect("no NUL"), 1)?;
        }
        let batcher = Batcher::new(loaded.input_spec().clone(), batch_size, loaded.device().clone(), loaded.input_dtype()).map_err(library)?;
        Ok(Encoder { name, model: loaded, batcher: Mutex::new(batcher), batch_size })
    }

    /// The model's name in the registry.
    #[getter]
    fn name(&self) -> String {
        self.name.clone()
    }

    /// The model id written into outputs (`google/path-foundation`).
    #[getter]
    fn model_id(&self) -> String {
        self.model.model_id().to_string()
    }

    /// Floats per embedding.
    #[getter]
    fn embedding_dim(&self) -> usize {
        self.model.embedding_dim()
    }

    /// Whether real weights are loaded (False for the seeded stand-in).
    #[getter]
    fn is_trained(&self) -> bool {
        self.model.is_trained()
    }

    /// The weights' SHA-256, or `untrained`.
    #[getter]
    fn weights_id(&self) -> String {
        self.model.weights_id().to_string()
    }

    /// What the model takes, in words (size, resizing, scaling).
    #[getter]
    fn input_description(&self) -> String {
        self.model.input_spec().describe()
    }

    /// Embeds `images`: a numpy array `(N, H, W, C)` or `(H, W, C)` of uint8, uint16 (all 16
    /// bits used) or float32, channels last. Returns `(N, D)` float32. Arrays that are not
    /// C-contiguous are copied first.
    fn embed<'py>(&self, py: Python<'py>, images: &Bound<'py, PyAny>) -> PyResult<Bound<'py, PyArray2<f32>>> {
        let (shape, owned) = samples(images)?;
        let (n, h, w, c) = match shape.as_slice() {
            [h, w, c] => (1, *h, *w, *c),
            [n, h, w, c] => (*n, *h, *w, *c),
            other => return Err(PyValueError::new_err(format!("images must have shape (N, H, W, C) or (H, W, C), channels last; got shape {other:?}"))),
        };
        if !(1..=4).contains(&c) {
            return Err(PyValueError::new_err(format!("images must have 1 to 4 channels, last (N, H, W, C); got {c} channels in shape {shape:?}")));
        }
        let per = h * w * c;
        let dim = self.model.embedding_dim();
        let result = py.detach(|| {
            let refs: Vec<ImageRef<'_>> = (0..n)
                .map(|i| match &owned {
                    Owned::U8(v) => ImageRef::u8(w, h, c, &v[i * per..(i + 1) * per]),
                    Owned::U16(v) => ImageRef::u16(w, h, c, &v[i * per..(i + 1) * per], 16),
                    Owned::F32(v) => ImageRef::f32(w, h, c, &v[i * per..(i + 1) * per]),
                })
                .collect();
            crate::pool::run(|| self.embed_refs(&refs))
        });
        let out = result.map_err(|e| PyValueError::new_err(e.to_string()))?;
        let array = Array2::from_shape_vec((n, dim), out).map_err(library)?;
        Ok(array.into_pyarray(py))
    }

    /// Embeds `texts` (a list of strings, or one string) with the model's text side
    /// (MedSigLIP): `(N, D)` float32 in the image embeddings' space. Models without a text
    /// side raise ValueError.
    fn embed_texts<'py>(&self, py: Python<'py>, texts: &Bound<'py, PyAny>) -> PyResult<Bound<'py, PyArray2<f32>>> {
        let Some(text) = self.model.text_encoder() else {
            let with_text: Vec<String> = registry::models().iter().filter(|m| m.name.contains("siglip")).map(|m| m.name.to_string()).collect();
            return Err(PyValueError::new_err(format!("{} embeds images only; texts need an image-text model ({})", self.name, with_text.join(", "))));
        };
        let texts: Vec<String> = if texts.is_instance_of::<PyString>() {
            vec![texts.extract()?]
        } else {
            texts.extract().map_err(|_| {
                PyTypeError::new_err(format!(
                    "texts must be a list of str (or one str); got a {}",
                    texts.get_type().name().map(|n| n.to_string()).unwrap_or_default()
                ))
            })?
        };
        let dim = self.model.embedding_dim();
        let n = texts.len();
        let out = py
            .detach(|| {
                crate::pool::run(|| -> haidef_wsi::encoders::Result<Vec<f32>> {
                    let refs: Vec<&str> = texts.iter().map(String::as_str).collect();
                    let mut out = Vec::with_capacity(n * dim);
                    for chunk in refs.chunks(self.batch_size) {
                        out.extend(text.embed_texts(chunk)?.flatten_all()?.to_vec1::<f32>()?);
                    }
                    Ok(out)
                })
            })
            .map_err(|e| PyValueError::new_err(e.to_string()))?;
        let array = Array2::from_shape_vec((n, dim), out).map_err(library)?;
        Ok(array.into_pyarray(py))
    }

    /// Embeds audio clips with an audio model (HeAR): `clips` is one clip `(S,)` or a batch
    /// `(N, S)` of float32/float64 samples (full scale ±1) or int16/int32 PCM (scaled by 2^-15 /
    /// 2^-31, as Google's serving does), recorded at `rate` Hz. Each clip is resampled to the
    /// model's rate as `scipy.signal.resample` does and must then be exactly the model's clip
    /// (HeAR: 2 s, 32000 samples at 16 kHz). Returns `(N, D)` float32. Whole recordings of any
    /// length: the `embed_audio` job.
    fn embed_audio<'py>(&self, py: Python<'py>, clips: &Bound<'py, PyAny>, rate: u32) -> PyResult<Bound<'py, PyArray2<f32>>> {
        let Some(spec) = self.model.audio_spec().copied() else {
            return Err(PyValueError::new_err(format!("{} does not take audio; audio needs an audio model (hear)", self.name)));
        };
        let (shape, samples) = waveform(clips)?;
        let (n, len) = match shape.as_slice() {
            [s] => (1, *s),
            [n, s] => (*n, *s),
            other => return Err(PyValueError::new_err(format!("clips must have shape (N, S) or (S,): one clip per row; got shape {other:?}"))),
        };
        let dim = self.model.embedding_dim();
        let out = py.detach(|| {
            crate::pool::run(|| -> PyResult<Vec<f32>> {
                let clips = (0..n)
                    .map(|i| Clip::from_samples(&samples[i * len..(i + 1) * len], rate, &spec).map_err(|e| PyValueError::new_err(format!("clip {i}: {e}"))))
                    .collect::<PyResult<Vec<Clip>>>()?;
                let refs: Vec<ImageRef<'_>> = clips.iter().map(Input::image).collect();
                self.embed_refs(&refs).map_err(|e| PyValueError::new_err(e.to_string()))
            })
        })?;
        let array = Array2::from_shape_vec((n, dim), out).map_err(library)?;
        Ok(array.into_pyarray(py))
    }

    fn __repr__(&self) -> String {
        format!("Encoder({:?}, weights={:?}, dim={})", self.name, self.model.weights_id(), self.model.embedding_dim())
    }
}

/// The shape and samples of `array` when it is a numpy array of `T`, each converted by `f`
/// (copied out, in C order whatever the array's layout).
fn extract<T: numpy::Element + Copy, U>(array: &Bound<'_, PyAny>, f: impl Fn(T) -> U) -> Option<(Vec<usize>, Vec<U>)> {
    let a = array.cast::<PyArrayDyn<T>>().ok()?;
    let r = a.readonly();
    Some((r.shape().to_vec(), r.as_array().iter().map(|&v| f(v)).collect()))
}

/// `array`'s dtype in words, for errors.
fn described(array: &Bound<'_, PyAny>) -> PyResult<String> {
    Ok(match array.getattr("dtype") {
        Ok(d) => format!("a numpy array of dtype {}", d.str()?),
        Err(_) => format!("a {}", array.get_type().name()?),
    })
}

/// The shape and samples of a numpy array of uint8, uint16 or float32.
fn samples(images: &Bound<'_, PyAny>) -> PyResult<(Vec<usize>, Owned)> {
    if let Some((shape, v)) = extract(images, |v: u8| v) {
        return Ok((shape, Owned::U8(v)));
    }
    if let Some((shape, v)) = extract(images, |v: u16| v) {
        return Ok((shape, Owned::U16(v)));
    }
    if let Some((shape, v)) = extract(images, |v: f32| v) {
        return Ok((shape, Owned::F32(v)));
    }
    let described = described(images)?;
    Err(PyTypeError::new_err(format!("images must be a numpy array of uint8, uint16 or float32 (N, H, W, C); got {described}")))
}

/// The shape and float samples of a waveform array: float32 and float64 as they are, int16 and
/// int32 PCM scaled to full scale ±1 as HeAR's serving scales them (2^-15, 2^-31).
fn waveform(clips: &Bound<'_, PyAny>) -> PyResult<(Vec<usize>, Vec<f32>)> {
    let found = extract(clips, |v: f32| v)
        .or_else(|| extract(clips, |v: f64| v as f32))
        .or_else(|| extract(clips, |v: i16| f32::from(v) / 32_768.0))
        .or_else(|| extract(clips, |v: i32| (f64::from(v) / 2_147_483_648.0) as f32));
    if let Some(found) = found {
        return Ok(found);
    }
    let described = described(clips)?;
    Err(PyTypeError::new_err(format!("clips must be a numpy array of float32, float64, int16 or int32 samples (N, S); got {described}")))
}
