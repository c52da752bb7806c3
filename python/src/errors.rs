//! The library's errors as Python exceptions, with the library's messages (which name the
//! file, frame, tag or field and what was expected).

use pyo3::create_exception;
use pyo3::exceptions::PyException;
use pyo3::PyErr;

create_exception!(
    haidef_wsi,
    HaidefError,
    PyException,
    "An error of the haidef-wsi library: reading a slide, decoding a frame, loading or running a model. The message names the file, frame, tag or field and what was expected."
);

/// `e` as a [`HaidefError`] with its message, the advice in it put in Python's terms.
pub fn library(e: impl std::fmt::Display) -> PyErr {
    HaidefError::new_err(e.to_string().replace("(OutOfBounds::PadWhite, or --pad in the examples)", "(pad=True)"))
}
