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
                    let reader = super::strlayout::Layout::get(py).map_or(KeyReader::CApi, KeyReader::InPlace);
                    list_buckets(list, reader, seed_state, dst)?;
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

/// Below this many keys one thread does it all (starting threads costs tens of microseconds).
const IN_PLACE_PARALLEL_MIN: usize = 65_536;

/// How `list_buckets` reads a key's text: in place from the object (`strlayout`, any thread),
/// or through the C API (`PyUnicode_AsUTF8AndSize`, the calling thread only) on interpreters
/// whose layout the probe does not know.
#[derive(Clone, Copy)]
enum KeyReader {
    InPlace(super::strlayout::Layout),
    CApi,
}

impl KeyReader {
    /// The ASCII text of the str at `p` (its bytes are its UTF-16 code units), or None for
    /// anything else.
    ///
    /// # Safety
    /// `p` is a live item of the list; the calling thread holds the GIL and runs no Python code.
    /// `CApi` must only be used on that thread.
    #[inline(always)]
    unsafe fn ascii<'a>(self, p: usize) -> Option<&'a [u8]> {
        let obj = p as *mut pyo3::ffi::PyObject;
        match self {
            KeyReader::InPlace(layout) => layout.ascii(obj),
            KeyReader::CApi => {
                let exact = pyo3::ffi::Py_TYPE(obj) == std::ptr::addr_of_mut!(pyo3::ffi::PyUnicode_Type);
                exact.then(|| utf8_of(obj)).flatten().filter(|b| b.is_ascii())
            }
        }
    }
}

/// Starts loading the str object at `p` into cache: the line holding its state, length and
/// the start of its text (a compact str's text follows its header); one line, not the whole
/// object: the line before is mostly the previous key's, and a second prefetch per key
/// measured slower (each waits for a free fill buffer). Into the outer caches (hint T2), which
/// measured 3-4% faster than into L1 on 1M keys (two runs of 15 interleaved rounds).
#[inline(always)]
fn prefetch_key(p: usize) {
    #[cfg(target_arch = "x86_64")]
    // SAFETY: prefetching never faults, whatever the address
    unsafe {
        use std::arch::x86_64::{_mm_prefetch, _MM_HINT_T2};
        _mm_prefetch::<_MM_HINT_T2>((p + 32) as *const i8);
    }
    #[cfg(not(target_arch = "x86_64"))]
    let _ = p;
}

/// v2 buckets of every key of a list. ASCII keys are read (`KeyReader`) and hashed chunk by
/// chunk, on up to four threads (within the native limit) when they can be read in place, each thread taking its own
/// slice of the list; keys the reader leaves (non-ASCII text, str subclasses, non-str items)
/// are then done here with the C API, which also raises for non-str items. The GIL stays held
/// by this thread throughout, so no Python code runs and every key stays alive and unchanged
/// while the workers read it.
fn list_buckets(list: &Bound<'_, PyList>, reader: KeyReader, seed_state: u32, dst: &mut [f64]) -> PyResult<()> {
    let owned: Vec<usize>;
    // SAFETY: the list is alive and unchanged for this call (GIL held, no Python code run);
    // the item pointers are read as plain addresses so the slice can be shared with workers
    let items: &[usize] = match reader {
        KeyReader::InPlace(_) => unsafe {
            let items = super::strlayout::list_items(list);
            std::slice::from_raw_parts(items.as_ptr() as *const usize, items.len())
        },
        KeyReader::CApi => {
            let lp = list.as_ptr();
            // SAFETY: i < len(list), borrowed items kept alive by the list
            owned = (0..list.len()).map(|i| unsafe { pyo3::ffi::PyList_GetItem(lp, i as pyo3::ffi::Py_ssize_t) } as usize).collect();
            &owned
        }
    };
    let n = items.len().min(dst.len());
    if n == 0 {
        return Ok(());
    }
    let tables = h::V2Tables::get();
    let work = |items: &[usize], out: &mut [f64]| -> Vec<usize> {
        // SAFETY (both arms): live items of the list (see above), i < out.len() == items.len()
        // (the kernel's contract); `CApi` runs on this thread only. One kernel instance per
        // reader, so the per-key read has no branch on which reader it is
        let prefetch = |i: usize| prefetch_key(unsafe { *items.get_unchecked(i) });
        match reader {
            KeyReader::InPlace(layout) => {
                let r = layout.reader();
                h::buckets_v2_ascii(
                    &tables,
                    seed_state,
                    out,
                    move |i| unsafe { r.ascii(*items.get_unchecked(i) as *mut pyo3::ffi::PyObject) },
                    prefetch,
                )
            }
            KeyReader::CApi => h::buckets_v2_ascii(&tables, seed_state, out, |i| unsafe { KeyReader::CApi.ascii(items[i]) }, prefetch),
        }
    };
    let threads = match reader {
        KeyReader::InPlace(_) if n >= IN_PLACE_PARALLEL_MIN => super::threads::for_call(0)?.clamp(1, 4),
        _ => 1,
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
        py.detach(|| unicode_rows_buckets(cps, width, seed_state, dst));
    }
    Ok(out)
}

/// Rows of a numpy `<U` array packed this many at a time for `buckets_v2_ascii`.
const UNICODE_BLOCK: usize = 4096;

/// v2 buckets of the rows of a `<U{width}` array (`cps`: its UCS-4 code points, row after row)
/// into `dst`. Rows of ASCII text are packed to bytes a block at a time and hashed like list
/// keys (`buckets_v2_ascii`, eight per vector step); other rows are hashed here over their
/// UTF-16 code units. numpy pads with trailing NULs (and strips them on read), so they are not
/// key text; NULs inside a row are.
fn unicode_rows_buckets(cps: &[u32], width: usize, seed_state: u32, dst: &mut [f64]) {
    let n = dst.len();
    let tables = h::V2Tables::get();
    let mut bytes = vec![0u8; UNICODE_BLOCK.min(n) * width];
    let mut lens = vec![0usize; UNICODE_BLOCK.min(n)];
    let mut ascii = vec![false; UNICODE_BLOCK.min(n)];
    let row_state = |row: &[u32]| {
        let mut st = seed_state;
        for &cp in row {
            if cp < 0x10000 {
                st = (st ^ cp).wrapping_mul(h::FNV_PRIME);
            } else {
                let v = cp - 0x10000;
                st = (st ^ (0xD800 + (v >> 10))).wrapping_mul(h::FNV_PRIME);
                st = (st ^ (0xDC00 + (v & 0x3FF))).wrapping_mul(h::FNV_PRIME);
            }
        }
        st
    };
    for b0 in (0..n).step_by(UNICODE_BLOCK) {
        let b1 = (b0 + UNICODE_BLOCK).min(n);
        for i in b0..b1 {
            let row = &cps[i * width..(i + 1) * width];
            let len = row.iter().rposition(|&c| c != 0).map_or(0, |p| p + 1);
            let k = i - b0;
            lens[k] = len;
            let packed = &mut bytes[k * width..k * width + len];
            let mut all = 0u32;
            for (b, &c) in packed.iter_mut().zip(&row[..len]) {
                *b = c as u8;
                all |= c;
            }
            ascii[k] = all < 0x80;
        }
        let (bytes, lens, ascii) = (&bytes, &lens, &ascii);
        let left = h::buckets_v2_ascii(
            &tables,
            seed_state,
            &mut dst[b0..b1],
            |k| ascii[k].then(|| &bytes[k * width..k * width + lens[k]]),
            |_| (),
        );
        for k in left {
            let i = b0 + k;
            dst[i] = h::bucket_v2_from_state(row_state(&cps[i * width..i * width + lens[k]]));
        }
    }
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
