//! Drift statistics and detectors bound to Python.

use numpy::PyArray1;
use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyType};

use super::arrays::{as_f64, reject_nan};
use super::errors::{data_error, guard, type_error, value_error};
use crate::kernels::{adwin, ks, page_hinkley, psi, welford};

fn codec_err(py: Python<'_>, e: crate::kernels::codec::CodecError) -> PyErr {
    data_error(py, e.0)
}

fn finite_scalar(py: Python<'_>, x: &Bound<'_, PyAny>, who: &str) -> PyResult<f64> {
    let v: f64 = x
        .extract()
        .map_err(|_| type_error(format!("{who}.update expects a real number, got {}", x.get_type().name().map(|n| n.to_string()).unwrap_or_default())))?;
    if v.is_nan() {
        return Err(data_error(py, format!("{who}.update got NaN; drop or impute missing values first")));
    }
    Ok(v)
}

fn indices<'py>(py: Python<'py>, v: Vec<i64>) -> Bound<'py, PyArray1<i64>> {
    PyArray1::from_vec(py, v)
}

/// The `update_many` of every detector: validate `values`, run `detect` without the GIL,
/// return the 0-based indices where drift was detected.
fn detect_many<'py>(
    py: Python<'py>,
    values: &Bound<'py, PyAny>,
    who: &str,
    detect: impl FnOnce(&[f64]) -> Vec<i64> + Send,
) -> PyResult<Bound<'py, PyArray1<i64>>> {
    guard(who, || {
        let a = as_f64(values, "values")?;
        let a = a.as_slice()?;
        reject_nan(py, a, "values")?;
        let hits = py.detach(|| detect(a));
        Ok(indices(py, hits))
    })
}

/// Two-sample KS: (statistic, pvalue, statistic_location, statistic_sign); scipy's asymp method.
#[pyfunction]
pub fn ks_2samp(py: Python<'_>, reference: &Bound<'_, PyAny>, current: &Bound<'_, PyAny>) -> PyResult<(f64, f64, f64, i8)> {
    guard("ks_2samp", || {
        let a = as_f64(reference, "reference")?;
        let b = as_f64(current, "current")?;
        let (a, b) = (a.as_slice()?, b.as_slice()?);
        if a.is_empty() || b.is_empty() {
            return Err(data_error(py, format!(
                "ks_2samp needs non-empty samples (reference has {}, current has {} values)",
                a.len(),
                b.len()
            )));
        }
        reject_nan(py, a, "reference")?;
        reject_nan(py, b, "current")?;
        let threads = super::threads::for_call(0)?;
        let r = py.detach(|| ks::ks_2samp(a, b, threads));
        Ok((r.statistic, r.pvalue, r.location, r.sign))
    })
}

/// scipy's two-sided asymptotic p-value for a KS statistic and sample sizes.
#[pyfunction]
pub fn ks_pvalue(statistic: f64, n1: i64, n2: i64) -> PyResult<f64> {
    if n1 < 1 || n2 < 1 {
        return Err(value_error(format!("sample sizes must be >= 1, got {n1} and {n2}")));
    }
    if !(0.0..=1.0).contains(&statistic) {
        return Err(value_error(format!("a KS statistic lies in [0, 1], got {statistic}")));
    }
    guard("ks_pvalue", || Ok(ks::ks_asymp_pvalue(statistic, n1 as usize, n2 as usize)))
}

fn check_bins(bins: i64) -> PyResult<usize> {
    if !(2..=10_000).contains(&bins) {
        return Err(value_error(format!("bins must be an integer in [2, 10000], got {bins}")));
    }
    Ok(bins as usize)
}

/// One-shot PSI of `current` against reference-quantile bins.
#[pyfunction(name = "psi")]
#[pyo3(signature = (reference, current, bins=10))]
pub fn psi_fn(py: Python<'_>, reference: &Bound<'_, PyAny>, current: &Bound<'_, PyAny>, bins: i64) -> PyResult<f64> {
    guard("psi", || {
        let bins = check_bins(bins)?;
        let a = as_f64(reference, "reference")?;
        let b = as_f64(current, "current")?;
        let (a, b) = (a.as_slice()?, b.as_slice()?);
        if a.is_empty() {
            return Err(data_error(py, "psi needs a non-empty reference"));
        }
        if b.is_empty() {
            return Err(data_error(py, "psi needs a non-empty current sample"));
        }
        reject_nan(py, a, "reference")?;
        reject_nan(py, b, "current")?;
        Ok(py.detach(|| psi::psi(a, b, bins)))
    })
}

/// PSI against a reference fitted once; `update(batch)` accumulates, `value()` reports.
#[pyclass(name = "PSIMonitor", module = "autoopt.drift", from_py_object)]
#[derive(Clone)]
pub struct PyPsiMonitor {
    inner: psi::PsiMonitor,
}

#[pymethods]
impl PyPsiMonitor {
    #[new]
    #[pyo3(signature = (reference, bins=10))]
    fn new(py: Python<'_>, reference: &Bound<'_, PyAny>, bins: i64) -> PyResult<Self> {
        guard("PSIMonitor", || {
            let bins = check_bins(bins)?;
            let a = as_f64(reference, "reference")?;
            let a = a.as_slice()?;
            if a.is_empty() {
                return Err(data_error(py, "PSIMonitor needs a non-empty reference"));
            }
            reject_nan(py, a, "reference")?;
            Ok(PyPsiMonitor { inner: py.detach(|| psi::PsiMonitor::fit(a, bins)) })
        })
    }

    fn update(&mut self, py: Python<'_>, batch: &Bound<'_, PyAny>) -> PyResult<()> {
        guard("PSIMonitor.update", || {
            let b = as_f64(batch, "batch")?;
            let b = b.as_slice()?;
            reject_nan(py, b, "batch")?;
            let inner = &mut self.inner;
            py.detach(|| inner.update(b));
            Ok(())
        })
    }

    /// PSI of everything since construction or the last `reset()`; NaN before any data.
    fn value(&self) -> f64 {
        self.inner.value()
    }

    fn reset(&mut self) {
        self.inner.reset()
    }

    #[getter]
    fn bins(&self) -> usize {
        self.inner.bins
    }

    /// Inner bin edges (the outer ones are -inf and +inf).
    #[getter]
    fn edges<'py>(&self, py: Python<'py>) -> Bound<'py, PyArray1<f64>> {
        PyArray1::from_slice(py, &self.inner.edges)
    }

    #[getter]
    fn n_reference(&self) -> u64 {
        self.inner.ref_total
    }

    #[getter]
    fn n_current(&self) -> u64 {
        self.inner.total
    }

    fn to_bytes<'py>(&self, py: Python<'py>) -> Bound<'py, PyBytes> {
        PyBytes::new(py, &self.inner.to_bytes())
    }

    #[classmethod]
    fn from_bytes(_cls: &Bound<'_, PyType>, py: Python<'_>, data: &[u8]) -> PyResult<Self> {
        guard("PSIMonitor.from_bytes", || {
            Ok(PyPsiMonitor { inner: psi::PsiMonitor::from_bytes(data).map_err(|e| codec_err(py, e))? })
        })
    }

    fn __repr__(&self) -> String {
        format!("PSIMonitor(bins={}, n_reference={}, n_current={})", self.inner.bins, self.inner.ref_total, self.inner.total)
    }
}

/// A drift detector's Python class: the methods every detector shares (`update`,
/// `update_many`, `drift_detected`, `n_detections`, `to_bytes`, `from_bytes`), then its own
/// constructor, getters and repr.
macro_rules! detector {
    ($(#[$doc:meta])* $py:ident, $name:literal, $kernel:ty, { $($own:tt)* }) => {
        $(#[$doc])*
        #[pyclass(name = $name, module = "autoopt.drift", from_py_object)]
        #[derive(Clone)]
        pub struct $py {
            inner: $kernel,
        }

        #[pymethods]
        impl $py {
            /// Feeds one value; True when drift is detected on it.
            fn update(&mut self, py: Python<'_>, x: &Bound<'_, PyAny>) -> PyResult<bool> {
                let v = finite_scalar(py, x, $name)?;
                Ok(self.inner.update(v))
            }

            /// Feeds many values; returns the 0-based indices (into `values`) where drift was
            /// detected.
            fn update_many<'py>(&mut self, py: Python<'py>, values: &Bound<'py, PyAny>) -> PyResult<Bound<'py, PyArray1<i64>>> {
                let inner = &mut self.inner;
                detect_many(py, values, concat!($name, ".update_many"), |a| inner.update_many(a))
            }

            #[getter]
            fn drift_detected(&self) -> bool {
                self.inner.drift_detected
            }

            /// Detections since construction (not reset with the window, unlike river's count).
            #[getter]
            fn n_detections(&self) -> u64 {
                self.inner.n_detections
            }

            fn to_bytes<'py>(&self, py: Python<'py>) -> Bound<'py, PyBytes> {
                PyBytes::new(py, &self.inner.to_bytes())
            }

            #[classmethod]
            fn from_bytes(_cls: &Bound<'_, PyType>, py: Python<'_>, data: &[u8]) -> PyResult<Self> {
                guard(concat!($name, ".from_bytes"), || {
                    Ok($py { inner: <$kernel>::from_bytes(data).map_err(|e| codec_err(py, e))? })
                })
            }

            $($own)*
        }
    };
}

detector!(
    /// ADWIN drift detector with river's semantics and detection points.
    PyAdwin, "ADWIN", adwin::Adwin, {
    #[new]
    #[pyo3(signature = (delta=0.002, clock=32, max_buckets=5, min_window_length=5, grace_period=10))]
    fn new(
        delta: f64,
        clock: i64,
        max_buckets: i64,
        min_window_length: i64,
        grace_period: i64,
    ) -> PyResult<Self> {
        let mb = max_buckets;
        if mb < 1 {
            return Err(value_error(format!("ADWIN max_buckets must be >= 1, got {mb}")));
        }
        let params = adwin::AdwinParams {
            delta,
            clock,
            max_buckets: mb as usize,
            min_window_length,
            grace_period,
        };
        Ok(PyAdwin { inner: adwin::Adwin::new(params).map_err(value_error)? })
    }

    #[getter]
    fn width(&self) -> f64 {
        self.inner.width()
    }
    #[getter]
    fn total(&self) -> f64 {
        self.inner.total()
    }
    /// Sum of squared deviations within the window (river's `variance`).
    #[getter]
    fn variance(&self) -> f64 {
        self.inner.variance()
    }
    #[getter]
    fn estimation(&self) -> f64 {
        self.inner.estimation()
    }
    #[getter]
    fn delta(&self) -> f64 {
        self.inner.params.delta
    }
    #[getter]
    fn clock(&self) -> i64 {
        self.inner.params.clock
    }
    #[getter]
    fn max_buckets(&self) -> usize {
        self.inner.params.max_buckets
    }
    #[getter]
    fn min_window_length(&self) -> i64 {
        self.inner.params.min_window_length
    }
    #[getter]
    fn grace_period(&self) -> i64 {
        self.inner.params.grace_period
    }

    fn __repr__(&self) -> String {
        let p = &self.inner.params;
        format!(
            "ADWIN(delta={}, clock={}, max_buckets={}, min_window_length={}, grace_period={}; width={})",
            p.delta, p.clock, p.max_buckets, p.min_window_length, p.grace_period, self.inner.width()
        )
    }
});

detector!(
    /// Page-Hinkley drift detector with river's semantics and detection points.
    PyPageHinkley, "PageHinkley", page_hinkley::PageHinkley, {
    #[new]
    #[pyo3(signature = (min_instances=30, delta=0.005, threshold=50.0, alpha=0.9999, mode="both"))]
    fn new(min_instances: i64, delta: f64, threshold: f64, alpha: f64, mode: &str) -> PyResult<Self> {
        let mode = page_hinkley::Mode::parse(mode).map_err(value_error)?;
        let mi = min_instances;
        Ok(PyPageHinkley {
            inner: page_hinkley::PageHinkley::new(mi, delta, threshold, alpha, mode).map_err(value_error)?,
        })
    }

    #[getter]
    fn min_instances(&self) -> u64 {
        self.inner.min_instances
    }
    #[getter]
    fn delta(&self) -> f64 {
        self.inner.delta
    }
    #[getter]
    fn threshold(&self) -> f64 {
        self.inner.threshold
    }
    #[getter]
    fn alpha(&self) -> f64 {
        self.inner.alpha
    }
    #[getter]
    fn mode(&self) -> &'static str {
        self.inner.mode.as_str()
    }

    fn __repr__(&self) -> String {
        let s = &self.inner;
        format!(
            "PageHinkley(min_instances={}, delta={}, threshold={}, alpha={}, mode='{}')",
            s.min_instances, s.delta, s.threshold, s.alpha, s.mode.as_str()
        )
    }
});

detector!(
    /// Two-sided tabular CUSUM.
    PyCusum, "CUSUM", page_hinkley::Cusum, {
    #[new]
    #[pyo3(signature = (k=0.5, h=5.0, target=None, min_instances=30))]
    fn new(k: f64, h: f64, target: Option<f64>, min_instances: i64) -> PyResult<Self> {
        let mi = min_instances;
        Ok(PyCusum { inner: page_hinkley::Cusum::new(k, h, target, mi).map_err(value_error)? })
    }

    /// The fixed target, or the warm-up mean when none was given.
    #[getter]
    fn target(&self) -> f64 {
        self.inner.target()
    }
    #[getter]
    fn s_pos(&self) -> f64 {
        self.inner.s_pos()
    }
    #[getter]
    fn s_neg(&self) -> f64 {
        self.inner.s_neg()
    }
    #[getter]
    fn k(&self) -> f64 {
        self.inner.k
    }
    #[getter]
    fn h(&self) -> f64 {
        self.inner.h
    }

    fn __repr__(&self) -> String {
        format!("CUSUM(k={}, h={}, target={:?}, min_instances={})", self.inner.k, self.inner.h, self.inner.fixed_target, self.inner.min_instances)
    }
});

/// Running count, mean, variance, min and max; `merge` combines two states exactly.
#[pyclass(name = "Welford", module = "autoopt.drift", from_py_object)]
#[derive(Clone)]
pub struct PyWelford {
    inner: welford::Welford,
}

#[pymethods]
impl PyWelford {
    #[new]
    fn new() -> Self {
        PyWelford { inner: welford::Welford::new() }
    }

    fn update(&mut self, py: Python<'_>, x: &Bound<'_, PyAny>) -> PyResult<()> {
        let v = finite_scalar(py, x, "Welford")?;
        self.inner.update(v);
        Ok(())
    }

    fn update_many(&mut self, py: Python<'_>, values: &Bound<'_, PyAny>) -> PyResult<()> {
        guard("Welford.update_many", || {
            let a = as_f64(values, "values")?;
            let a = a.as_slice()?;
            reject_nan(py, a, "values")?;
            self.inner.update_many(a);
            Ok(())
        })
    }

    /// A new state equal to one pass over both inputs.
    fn merge(&self, other: &PyWelford) -> PyWelford {
        PyWelford { inner: self.inner.merge(&other.inner) }
    }

    #[getter]
    fn count(&self) -> u64 {
        self.inner.count
    }
    #[getter]
    fn mean(&self) -> f64 {
        if self.inner.count == 0 {
            f64::NAN
        } else {
            self.inner.mean
        }
    }
    #[getter]
    fn min(&self) -> f64 {
        if self.inner.count == 0 {
            f64::NAN
        } else {
            self.inner.min
        }
    }
    #[getter]
    fn max(&self) -> f64 {
        if self.inner.count == 0 {
            f64::NAN
        } else {
            self.inner.max
        }
    }
    /// Sum of squared deviations from the mean.
    #[getter]
    fn m2(&self) -> f64 {
        self.inner.m2
    }

    #[pyo3(signature = (ddof=1))]
    fn variance(&self, ddof: u64) -> f64 {
        self.inner.variance(ddof)
    }

    #[pyo3(signature = (ddof=1))]
    fn std(&self, ddof: u64) -> f64 {
        self.inner.variance(ddof).sqrt()
    }

    fn to_bytes<'py>(&self, py: Python<'py>) -> Bound<'py, PyBytes> {
        PyBytes::new(py, &self.inner.to_bytes())
    }

    #[classmethod]
    fn from_bytes(_cls: &Bound<'_, PyType>, py: Python<'_>, data: &[u8]) -> PyResult<Self> {
        guard("Welford.from_bytes", || {
            Ok(PyWelford { inner: welford::Welford::from_bytes(data).map_err(|e| codec_err(py, e))? })
        })
    }

    fn __repr__(&self) -> String {
        format!("Welford(count={}, mean={}, variance={})", self.inner.count, self.mean(), self.inner.variance(1))
    }
}

/// The 1-D float64 view of `x` the kernels read: `x` itself when it already is a contiguous
/// float64 array, a zero-copy view of a polars Float64 Series without nulls, else a converted copy.
#[pyfunction]
#[pyo3(signature = (x, name="x"))]
pub fn as_float64<'py>(x: &Bound<'py, PyAny>, name: &str) -> PyResult<Bound<'py, PyArray1<f64>>> {
    guard("as_float64", || { let r = as_f64(x, name)?; Ok((*r).clone()) })
}

pub fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_function(wrap_pyfunction!(as_float64, m)?)?;
    m.add_function(wrap_pyfunction!(ks_2samp, m)?)?;
    m.add_function(wrap_pyfunction!(ks_pvalue, m)?)?;
    m.add_function(wrap_pyfunction!(psi_fn, m)?)?;
    m.add_class::<PyPsiMonitor>()?;
    m.add_class::<PyAdwin>()?;
    m.add_class::<PyPageHinkley>()?;
    m.add_class::<PyCusum>()?;
    m.add_class::<PyWelford>()?;
    Ok(())
}
