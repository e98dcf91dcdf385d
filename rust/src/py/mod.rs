//! Python bindings (`autoopt._native`).

mod arrays;
mod drift;
mod errors;
mod features;
mod hashing;

use pyo3::prelude::*;

/// Python module `autoopt._native`.
#[pymodule]
fn _native(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add("__version__", env!("CARGO_PKG_VERSION"))?;
    drift::register(m)?;
    hashing::register(m)?;
    features::register(m)?;
    Ok(())
}
