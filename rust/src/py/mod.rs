//! Python bindings (`autoopt._native`).

mod arrays;
mod drift;
mod errors;
mod features;
mod hashing;
mod risk;
mod route;
mod strlayout;
mod threads;

use pyo3::prelude::*;

/// Panics inside the entry-point guard, to prove a Rust panic reaches Python as RuntimeError.
#[pyfunction]
fn _guard_selftest() -> PyResult<()> {
    errors::guard("_guard_selftest", || -> PyResult<()> { panic!("deliberate panic for the guard self-test") })
}

/// Python module `autoopt._native`.
#[pymodule]
fn _native(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add("__version__", env!("CARGO_PKG_VERSION"))?;
    m.add_function(wrap_pyfunction!(_guard_selftest, m)?)?;
    drift::register(m)?;
    hashing::register(m)?;
    features::register(m)?;
    route::register(m)?;
    threads::register(m)?;
    risk::register(m)?;
    Ok(())
}
