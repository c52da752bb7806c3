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
    threads(m.py())?;
    m.add_class::<slide::Slide>()?;
    m.add_class::<slide::Patches>()?;
    m.add_class::<encoder::Encoder>()?;
    m.add_function(wrap_pyfunction!(encoder::models, m)?)?;
    m.add_function(wrap_pyfunction!(tune_cpu_inference, m)?)?;
    m.add_function(wrap_pyfunction!(jobs::embed_slide, m)?)?;
    m.add_function(wrap_pyfunction!(jobs::embed_images, m)?)?;
    m.add_function(wrap_pyfunction!(jobs::embed_audio, m)?)?;
    m.add("HaidefError", m.py().get_type::<errors::HaidefError>())?;
    m.add("__version__", env!("CARGO_PKG_VERSION"))?;
    Ok(())
}

/// On import, where the user has not set them, the thread counts the Rust examples run with
/// (through `os.environ`, so that Python sees them too): `CANDLE_NUM_THREADS=1`, as the encoders
/// already run one forward pass per thread over slices of a batch and candle's own element-wise
/// pool only adds contention, and `RAYON_NUM_THREADS` = candle's count (the physical cores),
/// without which candle reads /proc/cpuinfo at every CPU matrix product. Measured in
/// docs/BENCHMARKS.md (Python package entry).
fn threads(py: Python<'_>) -> PyResult<()> {
    let environ = py.import("os")?.getattr("environ")?;
    environ.call_method1("setdefault", ("CANDLE_NUM_THREADS", "1"))?;
    let cores = haidef_wsi::encoders::candle::utils::get_num_threads();
    environ.call_method1("setdefault", ("RAYON_NUM_THREADS", cores.to_string()))?;
    Ok(())
}

/// Tunes **the whole process** for CPU inference as the Rust examples do at start: glibc keeps
/// freed memory of up to 32 MiB blocks for reuse instead of handing it back to the kernel
/// (each forward pass allocates and frees intermediates of a few MB). It affects every library
/// in the process (numpy, torch), which then keeps its peak heap; so it is not done on import.
/// Returns what it changed: {"candle_threads_set": bool, "allocator_tuned": bool}.
#[pyfunction]
fn tune_cpu_inference(py: Python<'_>) -> PyResult<Bound<'_, pyo3::types::PyDict>> {
    let done = haidef_wsi::encoders::tune_cpu_inference();
    let d = pyo3::types::PyDict::new(py);
    d.set_item("candle_threads_set", done.candle_threads_set)?;
    d.set_item("allocator_tuned", done.allocator_tuned)?;
    Ok(d)
}
