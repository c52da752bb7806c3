//! Tensors read out of a `.safetensors` checkpoint for a model family's weights (ViT, ResNet v2):
//! the file loaded with its errors naming it, and each tensor checked before a model uses it —
//! present, of the expected shape, finite — with errors naming the file and the tensor.

use crate::error::{EncoderError, Result};
use candle_core::{DType, Device, Tensor};
use std::collections::HashMap;
use std::path::Path;

/// Every tensor of the checkpoint at `path`, on the CPU as stored.
pub(crate) fn load(path: &Path) -> Result<HashMap<String, Tensor>> {
    candle_core::safetensors::load(path, &Device::Cpu).map_err(|e| EncoderError::WeightsFile { file: path.display().to_string(), message: e.to_string() })
}

/// Tensor `name` of `raw` (the checkpoint `file`) in f32, if present with shape `expected` and
/// only finite values.
pub(crate) fn checked(raw: &HashMap<String, Tensor>, file: &str, name: &str, expected: &[usize]) -> Result<Tensor> {
    let t = raw.get(name).ok_or_else(|| EncoderError::MissingTensor { file: file.into(), name: name.into(), expected: expected.to_vec() })?;
    if t.dims() != expected {
        return Err(EncoderError::ShapeMismatch { file: file.into(), name: name.into(), expected: expected.to_vec(), found: t.dims().to_vec() });
    }
    let t = t.to_dtype(DType::F32)?;
    let count = t.flatten_all()?.to_vec1::<f32>()?.iter().filter(|v| !v.is_finite()).count();
    if count > 0 {
        return Err(EncoderError::NonFinite { file: file.into(), name: name.into(), count });
    }
    Ok(t)
}

/// The first few tensor names of `raw` in sorted order, for errors about a file that is not the
/// model asked for.
pub(crate) fn first_names(raw: &HashMap<String, Tensor>) -> Vec<&str> {
    let mut names: Vec<&str> = raw.keys().map(String::as_str).collect();
    names.sort_unstable();
    names.truncate(5);
    names
}
