//! Python exceptions raised by the bindings, and the panic guard around every entry point.

use std::panic::{catch_unwind, AssertUnwindSafe};

use pyo3::exceptions::{PyRuntimeError, PyTypeError, PyValueError};
use pyo3::prelude::*;
use pyo3::sync::PyOnceLock;
use pyo3::types::PyType;

static DATA_ERROR: PyOnceLock<Py<PyType>> = PyOnceLock::new();

/// `autoopt.errors.DataError` (a ValueError) with `msg`.
pub fn data_error(py: Python<'_>, msg: impl Into<String>) -> PyErr {
    let msg = msg.into();
    match DATA_ERROR.get_or_try_init(py, || -> PyResult<Py<PyType>> {
        let cls = py.import("autoopt.errors")?.getattr("DataError")?;
        Ok(cls.cast_into::<PyType>()?.unbind())
    }) {
        Ok(cls) => PyErr::from_type(cls.bind(py).clone(), msg),
        Err(_) => PyValueError::new_err(msg),
    }
}

pub fn value_error(msg: impl Into<String>) -> PyErr {
    PyValueError::new_err(msg.into())
}

pub fn type_error(msg: impl Into<String>) -> PyErr {
    PyTypeError::new_err(msg.into())
}

/// Runs `f`, turning a Rust panic into a RuntimeError so no panic ever unwinds into Python.
pub fn guard<T>(what: &str, f: impl FnOnce() -> PyResult<T>) -> PyResult<T> {
    match catch_unwind(AssertUnwindSafe(f)) {
        Ok(r) => r,
        Err(payload) => {
            let detail = payload
                .downcast_ref::<&str>()
                .map(|s| s.to_string())
                .or_else(|| payload.downcast_ref::<String>().cloned())
                .unwrap_or_else(|| "unknown panic".to_string());
            Err(PyRuntimeError::new_err(format!(
                "autoopt._native.{what} failed internally ({detail}); this is a bug, please report it"
            )))
        }
    }
}
