//! `simulate_strategy`: the Rust strategy simulation loop (`kernels::risk`) bound to Python.

use numpy::{PyArray1, PyArrayMethods, PyReadonlyArray1};
use pyo3::prelude::*;

use super::arrays::{as_f64, new_f64};
use super::errors::{data_error, guard};
use crate::kernels::risk::{simulate, Market, Out, Params, N_PARAMS};

type Outputs<'py> = (
    Bound<'py, PyArray1<f64>>,
    Bound<'py, PyArray1<f64>>,
    Bound<'py, PyArray1<f64>>,
    Bound<'py, PyArray1<i8>>,
);

/// simulate_strategy(open, high, low, close, prob, atr, vol, day, params, cost_bps)
/// -> (returns, exposure, turnover, exits); see `autoopt.strategy.simulate`.
#[pyfunction]
#[allow(clippy::too_many_arguments)]
pub fn simulate_strategy<'py>(
    py: Python<'py>,
    open: &Bound<'py, PyAny>,
    high: &Bound<'py, PyAny>,
    low: &Bound<'py, PyAny>,
    close: &Bound<'py, PyAny>,
    prob: &Bound<'py, PyAny>,
    atr: &Bound<'py, PyAny>,
    vol: &Bound<'py, PyAny>,
    day: &Bound<'py, PyAny>,
    params: &Bound<'py, PyAny>,
    cost_bps: f64,
) -> PyResult<Outputs<'py>> {
    guard("simulate_strategy", || {
        let names = ["open", "high", "low", "close", "prob", "atr", "vol", "day"];
        let objs = [open, high, low, close, prob, atr, vol, day];
        let arrays: Vec<PyReadonlyArray1<'py, f64>> =
            objs.iter().zip(names).map(|(o, n)| as_f64(o, n)).collect::<PyResult<_>>()?;
        let k_arr = as_f64(params, "params")?;
        let k = Params::from_slice(k_arr.as_slice()?).ok_or_else(|| {
            data_error(py, format!("simulate_strategy: params must hold {N_PARAMS} numbers"))
        })?;
        let slices: Vec<&[f64]> = arrays.iter().map(|a| a.as_slice()).collect::<Result<_, _>>()?;
        let n = slices[3].len();
        for (s, name) in slices.iter().zip(names) {
            if s.len() != n {
                return Err(data_error(
                    py,
                    format!("simulate_strategy: {name} has {} rows, close has {n}", s.len()),
                ));
            }
        }
        let m = Market {
            open: slices[0], high: slices[1], low: slices[2], close: slices[3],
            prob: slices[4], atr: slices[5], vol: slices[6], day: slices[7],
        };
        let (r, e, t) = (new_f64(py, n), new_f64(py, n), new_f64(py, n));
        // SAFETY: fresh arrays, not yet visible to Python; `simulate` writes every element
        let x = unsafe { PyArray1::<i8>::new(py, n, false) };
        {
            let mut out = unsafe {
                Out {
                    returns: r.as_slice_mut()?,
                    exposure: e.as_slice_mut()?,
                    turnover: t.as_slice_mut()?,
                    exits: x.as_slice_mut()?,
                }
            };
            py.detach(|| simulate(&m, &k, cost_bps, &mut out));
        }
        Ok((r, e, t, x))
    })
}

pub fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_function(wrap_pyfunction!(simulate_strategy, m)?)?;
    Ok(())
}
