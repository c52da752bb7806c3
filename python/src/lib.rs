//! `haidef_wsi` for Python (issue 31): the library's slides, regions and encoders with numpy
//! arrays, a thin layer over the Rust facade with no logic of its own. The package around this
//! module (`python/haidef_wsi/`) re-exports it and carries the type stubs; python/README.md says
//! what is there and what is not yet.

use pyo3::prelude::*;

mod encoder;
mod errors;
mod jobs;
mod pool;
mod slide;

/// The compiled module `haidef_wsi._native`.
#[pymodule]
fn _native(m: &Bound<'_, PyModule>) -> PyResult<()> {
    pool::loaded();
    m.add_class::<slide::Slide>()?;
    m.add_class::<slide::Patches>()?;
    m.add_class::<encoder::Encoder>()?;
    m.add_function(wrap_pyfunction!(encoder::models, m)?)?;
    m.add_function(wrap_pyfunction!(jobs::embed_slide, m)?)?;
    m.add_function(wrap_pyfunction!(jobs::embed_images, m)?)?;
    m.add_function(wrap_pyfunction!(jobs::embed_audio, m)?)?;
    m.add("HaidefError", m.py().get_type::<errors::HaidefError>())?;
    m.add("__version__", env!("CARGO_PKG_VERSION"))?;
    Ok(())
}
