//! GrowthBook-compatible hashing bound to Python.

use numpy::{PyArray1, PyArrayMethods, PyUntypedArray, PyUntypedArrayMethods, PyArrayDescrMethods};
use pyo3::prelude::*;
use pyo3::types::{PyList, PyString, PyTuple};

use super::arrays::new_f64;
use super::errors::{data_error, guard, type_error, value_error};
use crate::kernels::hashing::{self as h, FNV_OFFSET};

fn check_version(version: i64) -> PyResult<()> {
    if version != 1 && version != 2 {
        return Err(value_error(format!("hash version must be 1 or 2, got {version}")));
    }
    Ok(())
}

/// FNV-1a state over the UTF-16 code units of a Python str (lone surrogates included).
fn fnv_str(state: u32, s: &Bound<'_, PyString>) -> PyResult<u32> {
    match s.to_str() {
        Ok(t) => Ok(h::fnv1a_utf16(state, t)),
        Err(_) => {
            // str with lone surrogates: hash its UTF-16 code units as JavaScript would
            let enc = s.call_method1("encode", ("utf-16-le", "surrogatepass"))?;
            let bytes: &[u8] = enc.extract()?;
            let units: Vec<u16> = bytes.chunks_exact(2).map(|c| u16::from_le_bytes([c[0], c[1]])).collect();
            Ok(h::fnv1a_units(state, &units))
        }
    }
}

fn key_str<'a, 'py>(key: &'a Bound<'py, PyAny>, what: &str) -> PyResult<&'a Bound<'py, PyString>> {
    key.cast::<PyString>().map_err(|_| {
        type_error(format!(
            "{what} must be str, got {}",
            key.get_type().name().map(|n| n.to_string()).unwrap_or_default()
        ))
    })
}

#[inline]
fn bucket_from(seed_state: u32, seed: &Bound<'_, PyString>, key: &Bound<'_, PyString>, version: i64) -> PyResult<f64> {
    if version == 2 {
        Ok(h::bucket_v2_from_state(fnv_str(seed_state, key)?))
    } else {
        let st = fnv_str(fnv_str(FNV_OFFSET, key)?, seed)?;
        Ok((st % 1000) as f64 / 1000.0)
    }
}

/// Bucket in [0, 1) of `key` under `seed` (GrowthBook hash v2 by default).
#[pyfunction]
#[pyo3(signature = (seed, key, version=2))]
pub fn bucket(seed: &Bound<'_, PyAny>, key: &Bound<'_, PyAny>, version: i64) -> PyResult<f64> {
    check_version(version)?;
    let seed = key_str(seed, "seed")?;
    let key = key_str(key, "key")?;
    bucket_from(fnv_str(FNV_OFFSET, seed)?, seed, key, version)
}

/// Buckets for many keys: a list/tuple/iterable of str, or a numpy unicode array.
#[pyfunction]
#[pyo3(signature = (seed, keys, version=2))]
pub fn buckets<'py>(py: Python<'py>, seed: &Bound<'py, PyAny>, keys: &Bound<'py, PyAny>, version: i64) -> PyResult<Bound<'py, PyArray1<f64>>> {
    guard("buckets", || {
        check_version(version)?;
        let seed = key_str(seed, "seed")?;
        let seed_state = fnv_str(FNV_OFFSET, seed)?;
        if let Ok(arr) = keys.cast::<PyUntypedArray>() {
            if arr.dtype().kind() == b'U' && arr.ndim() == 1 && version == 2 {
                return unicode_array_buckets(py, arr, seed_state);
            }
        }
        if let Ok(list) = keys.cast::<PyList>() {
            let n = list.len();
            let out = new_f64(py, n);
            {
                // SAFETY: freshly created, not shared; fully written below or dropped on error
                let dst = unsafe { out.as_slice_mut()? };
                if version == 2 {
                    match super::strlayout::Layout::get(py) {
                        Some(layout) => list_buckets_in_place(list, layout, seed_state, dst)?,
                        None => list_buckets(list, seed_state, dst)?,
                    }
                } else {
                    for (i, item) in list.iter().enumerate() {
                        dst[i] = bucket_from(seed_state, seed, key_str(&item, "every key")?, version)?;
                    }
                }
            }
            return Ok(out);
        }
        let seq: Vec<Bound<'py, PyAny>> = if let Ok(t) = keys.cast::<PyTuple>() {
            t.iter().collect()
        } else if super::arrays::is_polars_series(keys) || keys.is_instance_of::<PyUntypedArray>() {
            keys.call_method0("to_list")
                .or_else(|_| keys.call_method0("tolist"))?
                .cast_into::<PyList>()
                .map_err(|_| type_error("keys could not be read as a list of str"))?
                .iter()
                .collect()
        } else if keys.is_instance_of::<PyString>() {
            return Err(type_error("keys must be a sequence of str, not a single str (use bucket())"));
        } else {
            keys.try_iter()
                .map_err(|_| type_error("keys must be an iterable of str"))?
                .collect::<PyResult<Vec<_>>>()?
        };
        let out = new_f64(py, seq.len());
        {
            // SAFETY: as above
            let dst = unsafe { out.as_slice_mut()? };
            for (i, item) in seq.iter().enumerate() {
                if item.is_none() {
                    return Err(data_error(py, format!("keys[{i}] is None; every unit needs a key")));
                }
                dst[i] = bucket_from(seed_state, seed, key_str(item, "every key")?, version)?;
            }
        }
        Ok(out)
    })
}

/// UTF-8 bytes of a str item, or None when it holds lone surrogates (no UTF-8 form).
///
/// # Safety
/// `item` must be a live str object; the slice lives as long as the object (GIL held).
unsafe fn utf8_of<'a>(item: *mut pyo3::ffi::PyObject) -> Option<&'a [u8]> {
    let mut len: pyo3::ffi::Py_ssize_t = 0;
    let p = pyo3::ffi::PyUnicode_AsUTF8AndSize(item, &mut len);
    if p.is_null() {
        pyo3::ffi::PyErr_Clear();
        return None;
    }
    Some(std::slice::from_raw_parts(p as *const u8, len as usize))
}

/// Raw pointer shared between the gathering thread and the hashing worker (disjoint use,
/// ordered by the `ready` counter).
#[derive(Clone, Copy)]
struct Shared<T>(*mut T);
// SAFETY: the pointees are only read after the writer published them (Release/Acquire on
// `ready`), and each output chunk is written by exactly one thread.
unsafe impl<T> Send for Shared<T> {}
unsafe impl<T> Sync for Shared<T> {}

const CHUNK: usize = 8192;

/// v2 buckets of every key of a list into `dst`, two stages overlapped: this thread reads the
/// keys in place under the GIL (the str's own UTF-8 buffer, which for ASCII text is its UTF-16
/// code units byte for byte; other keys are hashed here), chunk by chunk; a worker thread
/// hashes each chunk as soon as it is read, and this thread joins it when reading is done.
/// The GIL stays held throughout, so no Python code can free a key while it is being hashed.
fn list_buckets(list: &Bound<'_, PyList>, seed_state: u32, dst: &mut [f64]) -> PyResult<()> {
    use pyo3::ffi;
    use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
    let n = list.len();
    let tables = h::V2Tables::get();
    let mut keys: Vec<h::Key<'static>> = vec![h::Key::State(0); n];
    let (kp, op) = (Shared(keys.as_mut_ptr()), Shared(dst.as_mut_ptr()));
    let n_chunks = n.div_ceil(CHUNK);
    let (ready, next, abort) = (AtomicUsize::new(0), AtomicUsize::new(0), AtomicBool::new(false));
    let hash_chunks = |wait: bool| {
        loop {
            let c = next.fetch_add(1, Ordering::Relaxed);
            if c >= n_chunks {
                return;
            }
            let mut spins = 0u32;
            while ready.load(Ordering::Acquire) <= c {
                if abort.load(Ordering::Relaxed) || !wait {
                    return;
                }
                spins += 1;
                if spins < 64 {
                    std::hint::spin_loop();
                } else {
                    std::thread::yield_now();
                }
            }
            let (lo, hi) = (c * CHUNK, ((c + 1) * CHUNK).min(n));
            // SAFETY: chunk c was fully written before `ready` passed c; its output range is
            // claimed by this thread alone (fetch_add), and both buffers outlive the scope.
            let (k, o) = unsafe {
                let (kp, op) = (kp, op);
                (std::slice::from_raw_parts(kp.0.add(lo), hi - lo), std::slice::from_raw_parts_mut(op.0.add(lo), hi - lo))
            };
            h::buckets_v2_keys(&tables, seed_state, k, o);
        }
    };
    let lp = list.as_ptr();
    let gather = || -> PyResult<()> {
        for c in 0..n_chunks {
            for i in c * CHUNK..((c + 1) * CHUNK).min(n) {
                // SAFETY: i < len(list); the GIL is held and no Python code runs while the
                // borrowed items (kept alive by the list) are read.
                let item = unsafe { ffi::PyList_GetItem(lp, i as ffi::Py_ssize_t) };
                let exact_str = !item.is_null() && unsafe { ffi::Py_TYPE(item) == std::ptr::addr_of_mut!(ffi::PyUnicode_Type) };
                let key = match exact_str.then(|| unsafe { utf8_of(item) }).flatten() {
                    Some(b) if b.is_ascii() => h::Key::Ascii(b),
                    _ => {
                        let item = list.get_item(i)?;
                        h::Key::State(fnv_str(seed_state, key_str(&item, "every key")?)?)
                    }
                };
                // SAFETY: slot i belongs to chunk c, not yet published
                unsafe { kp.0.add(i).write(key) };
            }
            ready.store(c + 1, Ordering::Release);
        }
        Ok(())
    };
    let two = n >= 4 * CHUNK && std::thread::available_parallelism().map_or(1, |p| p.get()) >= 2;
    let result = if two {
        std::thread::scope(|sc| {
            sc.spawn(|| hash_chunks(true));
            let r = gather();
            if r.is_err() {
                abort.store(true, Ordering::Relaxed);
            } else {
                hash_chunks(true);
            }
            r
        })
    } else {
        let r = gather();
        if r.is_ok() {
            hash_chunks(false);
        }
        r
    };
    drop(keys);
    result
}

/// Below this many keys one thread does it all (starting threads costs tens of microseconds).
const IN_PLACE_PARALLEL_MIN: usize = 65_536;

/// v2 buckets of every key of a list, reading compact ASCII keys in place (`strlayout`) on
/// up to four threads, each hashing its own slice of the list; keys the in-place reader
/// leaves (non-ASCII text, str subclasses, non-str items) are then done here with the C API,
/// which also raises for non-str items. The GIL stays held by this thread throughout, so no
/// Python code runs and every key stays alive and unchanged while the workers read it.
fn list_buckets_in_place(
    list: &Bound<'_, PyList>,
    layout: super::strlayout::Layout,
    seed_state: u32,
    dst: &mut [f64],
) -> PyResult<()> {
    // SAFETY: the list is alive and unchanged for this call (GIL held, no Python code run);
    // the item pointers are read as plain addresses so the slice can be shared with workers
    let items: &[usize] = unsafe {
        let items = super::strlayout::list_items(list);
        std::slice::from_raw_parts(items.as_ptr() as *const usize, items.len())
    };
    let n = items.len().min(dst.len());
    if n == 0 {
        return Ok(());
    }
    let tables = h::V2Tables::get();
    let work = |items: &[usize], out: &mut [f64]| -> Vec<usize> {
        let mut pending = Vec::new();
        let mut hasher = h::PrefixHasher::new(seed_state);
        let mut block = [0u32; h::STATE_BLOCK];
        for (c, (ci, co)) in items.chunks(h::STATE_BLOCK).zip(out.chunks_mut(h::STATE_BLOCK)).enumerate() {
            for (j, (&p, st)) in ci.iter().zip(block.iter_mut()).enumerate() {
                // SAFETY: a live item of the list (see above)
                *st = match unsafe { layout.ascii(p as *mut pyo3::ffi::PyObject) } {
                    Some(b) => hasher.state(b),
                    None => {
                        pending.push(c * h::STATE_BLOCK + j);
                        0
                    }
                };
            }
            tables.buckets(&block[..ci.len()], co);
        }
        pending
    };
    let threads = if n >= IN_PLACE_PARALLEL_MIN {
        std::thread::available_parallelism().map_or(1, |p| p.get()).clamp(1, 4)
    } else {
        1
    };
    let per = n.div_ceil(threads);
    let mut pending: Vec<usize> = Vec::new();
    std::thread::scope(|sc| {
        let mut parts = items[..n].chunks(per).zip(dst[..n].chunks_mut(per));
        let first = parts.next();
        let handles: Vec<_> = parts
            .enumerate()
            .map(|(t, (it, out))| {
                let work = &work;
                sc.spawn(move || work(it, out).into_iter().map(|i| i + (t + 1) * per).collect::<Vec<_>>())
            })
            .collect();
        if let Some((it, out)) = first {
            pending = work(it, out);
        }
        for hd in handles {
            pending.extend(hd.join().unwrap_or_default());
        }
    });
    for i in pending {
        let item = list.get_item(i)?;
        dst[i] = h::bucket_v2_from_state(fnv_str(seed_state, key_str(&item, "every key")?)?);
    }
    Ok(())
}

/// numpy `<U` arrays hold fixed-width UCS-4 code points: hashed without creating str objects.
fn unicode_array_buckets<'py>(py: Python<'py>, arr: &Bound<'py, PyUntypedArray>, seed_state: u32) -> PyResult<Bound<'py, PyArray1<f64>>> {
    let np = py.import("numpy")?;
    let contiguous = np.call_method1("ascontiguousarray", (arr,))?;
    let carr = contiguous.cast::<PyUntypedArray>().map_err(|_| type_error("keys array is not readable"))?;
    let n = carr.len();
    let width = carr.dtype().itemsize() / 4;
    let raw = contiguous.call_method0("view")?.call_method1("view", (np.getattr("uint32")?,))?;
    let cps = raw.cast_into::<PyArray1<u32>>().map_err(|_| type_error("keys array is not readable"))?;
    let cps = cps.readonly();
    let cps = cps.as_slice()?;
    let out = new_f64(py, n);
    {
        // SAFETY: freshly created, not shared, fully written below
        let dst = unsafe { out.as_slice_mut()? };
        py.detach(|| {
            let states: Vec<u32> = (0..n)
                .map(|i| {
                    let mut st = seed_state;
                    let row = &cps[i * width..(i + 1) * width];
                    // numpy pads with trailing NULs (and strips them on read), so they are not key text
                    let len = row.iter().rposition(|&c| c != 0).map_or(0, |p| p + 1);
                    for &cp in &row[..len] {
                        if cp < 0x10000 {
                            st = (st ^ cp).wrapping_mul(h::FNV_PRIME);
                        } else {
                            let v = cp - 0x10000;
                            st = (st ^ (0xD800 + (v >> 10))).wrapping_mul(h::FNV_PRIME);
                            st = (st ^ (0xDC00 + (v & 0x3FF))).wrapping_mul(h::FNV_PRIME);
                        }
                    }
                    st
                })
                .collect();
            h::V2Tables::get().buckets(&states, dst);
        });
    }
    Ok(out)
}

/// GrowthBook `getBucketRanges` (coverage clamped, invalid weights replaced by equal weights).
#[pyfunction]
#[pyo3(signature = (n, coverage=1.0, weights=None))]
pub fn bucket_ranges(n: i64, coverage: f64, weights: Option<Vec<f64>>) -> PyResult<Vec<(f64, f64)>> {
    if !(0..=1_000_000).contains(&n) {
        return Err(value_error(format!("n must be in [0, 1000000], got {n}")));
    }
    if coverage.is_nan() {
        return Err(value_error("coverage must be a number, got NaN"));
    }
    Ok(h::bucket_ranges(n as usize, coverage, weights.as_deref()))
}

/// Variant index for `key` (GrowthBook chooseVariation over bucket ranges), None if outside coverage.
#[pyfunction]
#[pyo3(signature = (seed, key, weights, coverage=1.0))]
pub fn assign(seed: &Bound<'_, PyAny>, key: &Bound<'_, PyAny>, weights: Vec<f64>, coverage: f64) -> PyResult<Option<usize>> {
    if weights.is_empty() {
        return Err(value_error("weights must name at least one variant"));
    }
    if let Some((i, w)) = weights.iter().enumerate().find(|(_, w)| !(w.is_finite() && **w >= 0.0)) {
        return Err(value_error(format!("weights[{i}] must be a finite number >= 0, got {w}")));
    }
    let total: f64 = weights.iter().fold(0.0, |a, b| a + b);
    if !(0.99..=1.01).contains(&total) {
        return Err(value_error(format!("weights must sum to 1 (within 0.01), got {total}")));
    }
    if !(0.0..=1.0).contains(&coverage) {
        return Err(value_error(format!("coverage must be in [0, 1], got {coverage}")));
    }
    let seed = key_str(seed, "seed")?;
    let key = key_str(key, "key")?;
    let b = bucket_from(fnv_str(FNV_OFFSET, seed)?, seed, key, 2)?;
    let ranges = h::bucket_ranges(weights.len(), coverage, Some(&weights));
    Ok(h::choose_variation(b, &ranges))
}

pub fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_function(wrap_pyfunction!(bucket, m)?)?;
    m.add_function(wrap_pyfunction!(buckets, m)?)?;
    m.add_function(wrap_pyfunction!(bucket_ranges, m)?)?;
    m.add_function(wrap_pyfunction!(assign, m)?)?;
    Ok(())
}
