//! TA-Lib-compatible indicators and the fused multi-indicator pass, bound to Python.

use std::collections::HashMap;

use numpy::{PyArray1, PyArrayMethods, PyReadonlyArray1};
use pyo3::prelude::*;
use pyo3::types::PyDict;

mod pool;

use super::arrays::as_f64;
use pool::output;
use super::errors::{data_error, guard, value_error};
use crate::kernels::fused::{check_period, parse_indicator, run_jobs, Job, MAX_PERIOD};
use crate::kernels::ta::{Atr, Ema, Kernel, Macd, Roc, Rsi, Sma, Stddev, Zscore};

fn period(p: i64, name: &str, min: i64) -> PyResult<usize> {
    check_period(name, p, min).map_err(value_error)
}

/// Runs one kernel into new numpy outputs with the GIL released.
fn run_kernel<'py>(py: Python<'py>, mut k: Box<dyn Kernel + '_>, n: usize) -> PyResult<Vec<Bound<'py, PyArray1<f64>>>> {
    let outs: Vec<Bound<'py, PyArray1<f64>>> = (0..k.n_outputs()).map(|_| output(py, n)).collect();
    let mut views: Vec<&mut [f64]> = Vec::with_capacity(outs.len());
    for o in &outs {
        // SAFETY: freshly created arrays, not yet visible to Python; every element is written
        views.push(unsafe { o.as_slice_mut()? });
    }
    py.detach(|| k.run(0, n, &mut views));
    Ok(outs)
}

fn single<'py>(py: Python<'py>, x: &Bound<'py, PyAny>, what: &str, make: impl FnOnce(&[f64]) -> Box<dyn Kernel + '_>) -> PyResult<Bound<'py, PyArray1<f64>>> {
    guard(what, || {
        let a = as_f64(x, "x")?;
        let s = a.as_slice()?;
        let mut outs = run_kernel(py, make(s), s.len())?;
        Ok(outs.remove(0))
    })
}

#[pyfunction]
#[pyo3(signature = (x, period=30))]
pub fn sma<'py>(py: Python<'py>, x: &Bound<'py, PyAny>, period: i64) -> PyResult<Bound<'py, PyArray1<f64>>> {
    let p = self::period(period, "period", 1)?;
    single(py, x, "sma", |s| Box::new(Sma::new(s, p)))
}

#[pyfunction]
#[pyo3(signature = (x, period=30))]
pub fn ema<'py>(py: Python<'py>, x: &Bound<'py, PyAny>, period: i64) -> PyResult<Bound<'py, PyArray1<f64>>> {
    let p = self::period(period, "period", 1)?;
    single(py, x, "ema", |s| Box::new(Ema::new(s, p)))
}

#[pyfunction]
#[pyo3(signature = (x, period=14))]
pub fn rsi<'py>(py: Python<'py>, x: &Bound<'py, PyAny>, period: i64) -> PyResult<Bound<'py, PyArray1<f64>>> {
    let p = self::period(period, "period", 2)?;
    single(py, x, "rsi", |s| Box::new(Rsi::new(s, p)))
}

#[pyfunction]
#[pyo3(signature = (x, period=5))]
pub fn stddev<'py>(py: Python<'py>, x: &Bound<'py, PyAny>, period: i64) -> PyResult<Bound<'py, PyArray1<f64>>> {
    let p = self::period(period, "period", 2)?;
    single(py, x, "stddev", |s| Box::new(Stddev::new(s, p)))
}

#[pyfunction]
#[pyo3(signature = (x, period=10))]
pub fn roc<'py>(py: Python<'py>, x: &Bound<'py, PyAny>, period: i64) -> PyResult<Bound<'py, PyArray1<f64>>> {
    let p = self::period(period, "period", 1)?;
    single(py, x, "roc", |s| Box::new(Roc::new(s, p, true)))
}

#[pyfunction]
#[pyo3(signature = (x, period=1))]
pub fn returns<'py>(py: Python<'py>, x: &Bound<'py, PyAny>, period: i64) -> PyResult<Bound<'py, PyArray1<f64>>> {
    let p = self::period(period, "period", 1)?;
    single(py, x, "returns", |s| Box::new(Roc::new(s, p, false)))
}

#[pyfunction]
#[pyo3(signature = (x, period=20))]
pub fn zscore<'py>(py: Python<'py>, x: &Bound<'py, PyAny>, period: i64) -> PyResult<Bound<'py, PyArray1<f64>>> {
    let p = self::period(period, "period", 2)?;
    single(py, x, "zscore", |s| Box::new(Zscore::new(s, p)))
}

#[pyfunction]
#[pyo3(signature = (high, low, close, period=14))]
pub fn atr<'py>(py: Python<'py>, high: &Bound<'py, PyAny>, low: &Bound<'py, PyAny>, close: &Bound<'py, PyAny>, period: i64) -> PyResult<Bound<'py, PyArray1<f64>>> {
    let p = self::period(period, "period", 1)?;
    guard("atr", || {
        let (h, l, c) = (as_f64(high, "high")?, as_f64(low, "low")?, as_f64(close, "close")?);
        let (h, l, c) = (h.as_slice()?, l.as_slice()?, c.as_slice()?);
        if h.len() != l.len() || h.len() != c.len() {
            return Err(data_error(py, format!(
                "high, low and close must have the same length, got {}, {} and {}",
                h.len(),
                l.len(),
                c.len()
            )));
        }
        let mut outs = run_kernel(py, Box::new(Atr::new(h, l, c, p)), c.len())?;
        Ok(outs.remove(0))
    })
}

#[pyfunction]
#[pyo3(signature = (x, fast=12, slow=26, signal=9))]
pub fn macd<'py>(
    py: Python<'py>,
    x: &Bound<'py, PyAny>,
    fast: i64,
    slow: i64,
    signal: i64,
) -> PyResult<(Bound<'py, PyArray1<f64>>, Bound<'py, PyArray1<f64>>, Bound<'py, PyArray1<f64>>)> {
    let f = period(fast, "fast", 2)?;
    let s = period(slow, "slow", 2)?;
    let g = period(signal, "signal", 1)?;
    guard("macd", || {
        let a = as_f64(x, "x")?;
        let xs = a.as_slice()?;
        let mut outs = run_kernel(py, Box::new(Macd::new(xs, f, s, g)), xs.len())?;
        let hist = outs.remove(2);
        let sig = outs.remove(1);
        Ok((outs.remove(0), sig, hist))
    })
}

/// Fused pass: `columns` maps names to arrays; `specs` is a list of (kind, params, column).
/// Returns one float64 array per output (MACD contributes three), in spec order. `threads`:
/// 0 for as many as the native limit allows (`AUTOOPT_THREADS`), which also caps any other value.
#[pyfunction]
#[pyo3(signature = (columns, specs, threads=0))]
pub fn fused_features<'py>(
    py: Python<'py>,
    columns: &Bound<'py, PyDict>,
    specs: Vec<(String, Vec<i64>, String)>,
    threads: i64,
) -> PyResult<Vec<Bound<'py, PyArray1<f64>>>> {
    guard("fused_features", || {
        if !(0..=64).contains(&threads) {
            return Err(value_error(format!("threads must be in [0, 64] (0: the native limit), got {threads}")));
        }
        let threads = super::threads::for_call(threads as usize)?;
        let mut parsed = Vec::with_capacity(specs.len());
        for (kind, params, column) in &specs {
            parsed.push((parse_indicator(kind, params).map_err(value_error)?, column.clone()));
        }
        let mut arrays: HashMap<String, PyReadonlyArray1<'py, f64>> = HashMap::new();
        let mut n: Option<(usize, String)> = None;
        let mut need = |name: &str, arrays: &mut HashMap<String, PyReadonlyArray1<'py, f64>>| -> PyResult<()> {
            if arrays.contains_key(name) {
                return Ok(());
            }
            let obj = columns
                .get_item(name)?
                .ok_or_else(|| data_error(py, format!("column {name:?} is missing")))?;
            let arr = as_f64(&obj, &format!("column {name:?}"))?;
            let len = arr.as_slice()?.len();
            match &n {
                None => n = Some((len, name.to_string())),
                Some((m, first)) if *m != len => {
                    return Err(data_error(py, format!(
                        "columns must have the same length: {first:?} has {m} rows, {name:?} has {len}"
                    )))
                }
                _ => {}
            }
            arrays.insert(name.to_string(), arr);
            Ok(())
        };
        for (ind, column) in &parsed {
            if ind.needs_high_low() {
                for c in ["high", "low", "close"] {
                    need(c, &mut arrays)?;
                }
            } else {
                need(column, &mut arrays)?;
            }
        }
        let n = n.map(|(m, _)| m).unwrap_or(0);
        let slices: HashMap<&str, &[f64]> = arrays
            .iter()
            .map(|(k, v)| Ok((k.as_str(), v.as_slice()?)))
            .collect::<PyResult<_>>()?;
        let empty: &[f64] = &[];
        let mut outputs: Vec<Bound<'py, PyArray1<f64>>> = Vec::new();
        let mut jobs: Vec<Job<'_>> = Vec::with_capacity(parsed.len());
        for (ind, column) in &parsed {
            let get = |c: &str| slices.get(c).copied().unwrap_or(empty);
            let x = if ind.needs_high_low() { get("close") } else { get(column) };
            let kernel = ind.kernel(x, get("high"), get("low"), get("close"));
            let mut outs = Vec::with_capacity(ind.n_outputs());
            for _ in 0..ind.n_outputs() {
                let o = output(py, n);
                // SAFETY: a fresh contiguous array of n elements that stays alive (in `outputs`)
                // until the pass ends; written in full before Python sees it.
                outs.push(unsafe { std::slice::from_raw_parts_mut(o.data(), n) });
                outputs.push(o);
            }
            jobs.push(Job { kernel, outs });
        }
        py.detach(|| run_jobs(jobs, n, threads));
        Ok(outputs)
    })
}

pub fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_function(wrap_pyfunction!(sma, m)?)?;
    m.add_function(wrap_pyfunction!(ema, m)?)?;
    m.add_function(wrap_pyfunction!(rsi, m)?)?;
    m.add_function(wrap_pyfunction!(atr, m)?)?;
    m.add_function(wrap_pyfunction!(stddev, m)?)?;
    m.add_function(wrap_pyfunction!(roc, m)?)?;
    m.add_function(wrap_pyfunction!(returns, m)?)?;
    m.add_function(wrap_pyfunction!(zscore, m)?)?;
    m.add_function(wrap_pyfunction!(macd, m)?)?;
    m.add_function(wrap_pyfunction!(fused_features, m)?)?;
    m.add_function(wrap_pyfunction!(pool::release_output_buffers, m)?)?;
    m.add_function(wrap_pyfunction!(pool::output_buffers_kept, m)?)?;
    m.add("MAX_PERIOD", MAX_PERIOD)?;
    Ok(())
}
