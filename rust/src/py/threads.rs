//! The native thread limit (`AUTOOPT_THREADS`, see `kernels::threads`) bound to Python.

use pyo3::prelude::*;

use super::errors::value_error;
use crate::kernels::threads as t;

/// Threads one kernel call may use: `requested` (0: as many as allowed) capped by the limit;
/// a bad `AUTOOPT_THREADS` is a ValueError naming it.
pub fn for_call(requested: usize) -> PyResult<usize> {
    t::for_call(requested).map_err(value_error)
}

/// The thread limit of the native kernels in force now.
#[pyfunction]
pub fn threads() -> PyResult<usize> {
    t::limit().map_err(value_error)
}

/// Sets the thread limit of the native kernels for this process; 0 returns to `AUTOOPT_THREADS`.
#[pyfunction]
pub fn set_threads(n: i64) -> PyResult<()> {
    if !(0..=t::MAX_THREADS as i64).contains(&n) {
        return Err(value_error(format!("threads must be in [0, {}] (0: AUTOOPT_THREADS), got {n}", t::MAX_THREADS)));
    }
    t::set_limit(n as usize);
    Ok(())
}

pub fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_function(wrap_pyfunction!(threads, m)?)?;
    m.add_function(wrap_pyfunction!(set_threads, m)?)?;
    Ok(())
}
