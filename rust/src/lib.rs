//! Native hot path of autoopt, exposed to Python as `autoopt._native`.
use pyo3::prelude::*;

/// Python module `autoopt._native`.
#[pymodule]
fn _native(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add("__version__", env!("CARGO_PKG_VERSION"))?;
    Ok(())
}
