//! Input coercion: contiguous float64 numpy arrays (and polars Float64 Series without nulls)
//! are borrowed without copying; other numeric inputs are converted once; anything else is
//! refused with a TypeError naming the argument.

use numpy::{PyArray1, PyArrayDescrMethods, PyArrayMethods, PyReadonlyArray1, PyUntypedArray, PyUntypedArrayMethods};
use pyo3::prelude::*;

use super::errors::{type_error, value_error};

fn describe(obj: &Bound<'_, PyAny>) -> String {
    obj.get_type().name().map(|n| n.to_string()).unwrap_or_else(|_| "object".into())
}

/// Borrows `obj` as a 1-D float64 array, converting numeric inputs when needed.
pub fn as_f64<'py>(obj: &Bound<'py, PyAny>, name: &str) -> PyResult<PyReadonlyArray1<'py, f64>> {
    let py = obj.py();
    if let Ok(arr) = obj.cast::<PyArray1<f64>>() {
        if arr.is_contiguous() {
            return Ok(arr.readonly());
        }
    }
    let np = py.import("numpy")?;
    let candidate: Bound<'py, PyAny> = if obj.is_instance_of::<PyUntypedArray>() {
        obj.clone()
    } else if is_polars_series(obj) {
        let dtype = obj.getattr("dtype")?;
        let numeric = dtype.call_method0("is_numeric")?.is_truthy()?;
        let boolean = dtype.repr()?.to_string() == "Boolean";
        if !(numeric || boolean) {
            return Err(type_error(format!(
                "{name} must be numeric, got a polars Series of dtype {}",
                dtype.repr()?
            )));
        }
        obj.call_method0("to_numpy")?
    } else {
        match np.call_method1("asarray", (obj,)) {
            Ok(a) => a,
            Err(_) => {
                return Err(type_error(format!(
                    "{name} must be a 1-D numeric array, got {}",
                    describe(obj)
                )))
            }
        }
    };
    let untyped = candidate.cast::<PyUntypedArray>().map_err(|_| {
        type_error(format!("{name} must be a 1-D numeric array, got {}", describe(obj)))
    })?;
    if untyped.ndim() != 1 {
        return Err(value_error(format!(
            "{name} must be 1-D, got an array with {} dimensions",
            untyped.ndim()
        )));
    }
    let kind = untyped.dtype().kind();
    if !matches!(kind, b'f' | b'i' | b'u' | b'b') {
        return Err(type_error(format!(
            "{name} must be numeric (float, int or bool), got dtype {}",
            untyped.dtype().str()?
        )));
    }
    let converted = np.call_method1("ascontiguousarray", (candidate, np.getattr("float64")?))?;
    let arr = converted.cast_into::<PyArray1<f64>>().map_err(|_| {
        type_error(format!("{name} could not be converted to float64"))
    })?;
    Ok(arr.readonly())
}

pub fn is_polars_series(obj: &Bound<'_, PyAny>) -> bool {
    let t = obj.get_type();
    let module = t.module().map(|m| m.to_string()).unwrap_or_default();
    let name = t.name().map(|n| n.to_string()).unwrap_or_default();
    module.starts_with("polars") && name == "Series"
}

/// Rejects NaN with a DataError naming the argument and the first offending index.
pub fn reject_nan(py: Python<'_>, xs: &[f64], name: &str) -> PyResult<()> {
    // a branch-free pass over blocks (vectorised); the position only once one holds a NaN
    let any_nan = xs.chunks(256).any(|c| c.iter().fold(false, |acc, v| acc | v.is_nan()));
    if !any_nan {
        return Ok(());
    }
    if let Some(i) = xs.iter().position(|v| v.is_nan()) {
        return Err(super::errors::data_error(
            py,
            format!("{name} contains NaN (first at index {i}); drop or impute missing values first"),
        ));
    }
    Ok(())
}

/// A new uninitialised float64 array (numpy's allocator, so large outputs get huge pages).
pub fn new_f64<'py>(py: Python<'py>, n: usize) -> Bound<'py, PyArray1<f64>> {
    // SAFETY: every element is written by the caller before the array is returned to Python.
    unsafe { PyArray1::<f64>::new(py, n, false) }
}
