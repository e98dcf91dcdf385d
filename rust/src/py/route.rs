//! The A/B router's batch routing bound to Python (`RouteTable`); `autoopt.ab.native_route`
//! builds the table from the experiment book and runs it on each fetched batch.

use std::collections::HashSet;

use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyList};

use super::errors::{guard, value_error};
use crate::kernels::hashing::{bucket_ranges, fnv1a_utf16, FNV_OFFSET};
use crate::kernels::route::{delivered_count, Experiment, RouteIds, Routed, Table, Unit, Variant};

/// (name, release_id, subject, paper, step, confidence_threshold, size_multiplier, config msgpack)
#[derive(FromPyObject)]
struct VariantArgs(String, String, String, bool, String, Option<f64>, f64, Vec<u8>);

/// (name, symbol, unit, seed, weights, coverage, shadow, variants, assigned unit keys)
#[derive(FromPyObject)]
struct ExperimentArgs(String, String, String, String, Vec<f64>, f64, bool, Vec<VariantArgs>, Vec<String>);

fn experiment(a: ExperimentArgs) -> PyResult<Experiment> {
    let ExperimentArgs(name, symbol, unit, seed, weights, coverage, shadow, variants, assigned) = a;
    let unit = match unit.as_str() {
        "signal_id" => Unit::SignalId,
        "symbol" => Unit::Symbol,
        "account" => Unit::Account,
        other => return Err(value_error(format!("experiment {name:?}: unknown unit {other:?}"))),
    };
    if variants.is_empty() || variants.len() != weights.len() {
        return Err(value_error(format!(
            "experiment {name:?}: {} variants for {} weights",
            variants.len(),
            weights.len()
        )));
    }
    Ok(Experiment {
        seed_state: fnv1a_utf16(FNV_OFFSET, &seed),
        ranges: bucket_ranges(weights.len(), coverage, Some(&weights)),
        variants: variants
            .into_iter()
            .map(|VariantArgs(name, release_id, subject, paper, step, threshold, size_multiplier, config)| Variant {
                name,
                release_id,
                subject,
                paper,
                step,
                threshold,
                size_multiplier,
                config,
            })
            .collect(),
        assigned: assigned.into_iter().collect::<HashSet<_>>(),
        name,
        symbol,
        unit,
        shadow,
    })
}

type Ids = (String, String, String);

fn ids(r: Option<RouteIds>) -> Option<Ids> {
    r.map(|r| (r.event_id, r.causation_id, r.correlation_id))
}

/// What `RouteTable.route` produced for a run of a batch.
#[pyclass(module = "autoopt._native", frozen)]
pub struct RouteChunk {
    /// Index of the first message left to the Python path (the batch length if none).
    #[pyo3(get)]
    stop: usize,
    /// `PUB` frames for every delivery, ready for the connection's write buffer.
    #[pyo3(get)]
    frames: Py<PyBytes>,
    #[pyo3(get)]
    deliveries: usize,
    #[pyo3(get)]
    payload_bytes: usize,
    /// The encoded `SignalRouted` records, back to back (`n_routes` of them).
    #[pyo3(get)]
    routes: Py<PyBytes>,
    #[pyo3(get)]
    n_routes: usize,
    /// (event_id, causation_id, correlation_id) of the first and last route.
    #[pyo3(get)]
    first: Option<Ids>,
    #[pyo3(get)]
    last: Option<Ids>,
    /// (experiment index, unit key, variant index) of units assigned for the first time.
    #[pyo3(get)]
    new_units: Vec<(usize, String, usize)>,
    #[pyo3(get)]
    routed: usize,
    #[pyo3(get)]
    passed: usize,
    #[pyo3(get)]
    unroutable: usize,
}

/// The running experiments, ready to route batches of raw `SignalEmitted` messages.
#[pyclass(module = "autoopt._native")]
pub struct RouteTable {
    table: Table,
}

#[pymethods]
impl RouteTable {
    #[new]
    #[pyo3(signature = (experiments, passthrough, max_payload))]
    fn new(experiments: Vec<ExperimentArgs>, passthrough: String, max_payload: usize) -> PyResult<Self> {
        let experiments = experiments.into_iter().map(experiment).collect::<PyResult<Vec<_>>>()?;
        Ok(RouteTable { table: Table::new(experiments, passthrough, max_payload) })
    }

    /// Routes `msgs[start:]` (objects with `data: bytes` and `reply: str`, as nats-py's `Msg`)
    /// until a message needs the Python path.
    #[pyo3(signature = (msgs, start, max_deliver, now_ns))]
    fn route(&mut self, py: Python<'_>, msgs: &Bound<'_, PyList>, start: usize, max_deliver: u64, now_ns: i64) -> PyResult<RouteChunk> {
        guard("RouteTable.route", || {
            let n = msgs.len();
            let mut datas: Vec<Bound<'_, PyBytes>> = Vec::with_capacity(n.saturating_sub(start));
            let mut delivered = Vec::with_capacity(datas.capacity());
            for i in start..n {
                let m = msgs.get_item(i)?;
                let Ok(data) = m.getattr(pyo3::intern!(py, "data"))?.cast_into::<PyBytes>() else { break };
                let reply = m.getattr(pyo3::intern!(py, "reply"))?;
                delivered.push(reply.extract::<&str>().ok().and_then(delivered_count));
                datas.push(data);
            }
            let payloads: Vec<&[u8]> = datas.iter().map(|d| d.as_bytes()).collect();
            let mut out = Routed::default();
            let stop = start + self.table.route_batch(&payloads, &delivered, max_deliver, now_ns, &mut out);
            Ok(RouteChunk {
                stop,
                frames: PyBytes::new(py, &out.frames).unbind(),
                deliveries: out.deliveries,
                payload_bytes: out.payload_bytes,
                routes: PyBytes::new(py, &out.routes).unbind(),
                n_routes: out.n_routes,
                first: ids(out.first),
                last: ids(out.last),
                new_units: out
                    .new_units
                    .into_iter()
                    .map(|u| (u.experiment, u.unit_key, u.variant))
                    .collect(),
                routed: out.routed,
                passed: out.passed,
                unroutable: out.unroutable,
            })
        })
    }
}

pub fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_class::<RouteTable>()?;
    m.add_class::<RouteChunk>()?;
    Ok(())
}
