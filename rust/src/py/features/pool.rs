//! Large indicator outputs on memory that has already been touched.
//!
//! Why: a fresh 80 MB output (10M bars) is mapped by the kernel on first write, and the kernel
//! zeroes every page before handing it over: on the 2-vCPU hosts this project runs on that
//! zeroing (`clear_page_erms`) took ~6.5 ms per 80 MB, against 2.7 ms for writing the same
//! memory once it is mapped, and was 45% of a one-thread 8-indicator pass (`perf record`).
//! glibc returns such large blocks to the kernel when they are freed, so every call paid it
//! again. Here, the buffer behind an output whose last user is gone is kept (up to
//! `MAX_KEPT_BYTES`, at most `KEEP_FOR`) and the next output of the same size is written
//! into it: the same pages, no zeroing. Allocators such as jemalloc (which polars uses) keep
//! freed pages for the same reason.
//!
//! How: the buffer is a numpy array (numpy's allocator, so huge pages where the system gives
//! them) that Python never sees. The array handed out views its memory and has as its base a
//! small owner object; when the last array or view on it is gone, the owner's destructor puts
//! the buffer in the pool instead of freeing it. Outputs under `MIN_BYTES` are plain numpy
//! arrays (small blocks are reused by the C allocator anyway). `AUTOOPT_OUTPUT_POOL_MB=0`
//! switches the pool off; `release_output_buffers()` empties it.

use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};

use numpy::ndarray::ArrayView1;
use numpy::{PyArray1, PyArrayMethods};
use pyo3::prelude::*;

use super::super::arrays::new_f64;

/// Outputs at least this large come from the pool.
const MIN_BYTES: usize = 1 << 20;
/// Default cap on the bytes kept (`AUTOOPT_OUTPUT_POOL_MB` overrides it; 0 switches it off).
const MAX_KEPT_BYTES: usize = 1 << 30;
/// A kept buffer not reused within this long is released (whenever the pool is next used).
const KEEP_FOR: Duration = Duration::from_secs(60);

struct Kept {
    arr: Py<PyArray1<f64>>,
    len: usize,
    since: Instant,
}

static POOL: Mutex<Vec<Kept>> = Mutex::new(Vec::new());

fn max_kept() -> usize {
    static CAP: OnceLock<usize> = OnceLock::new();
    *CAP.get_or_init(|| {
        std::env::var("AUTOOPT_OUTPUT_POOL_MB")
            .ok()
            .and_then(|v| v.trim().parse::<usize>().ok())
            .map_or(MAX_KEPT_BYTES, |mb| mb.saturating_mul(1 << 20))
    })
}

fn lock() -> std::sync::MutexGuard<'static, Vec<Kept>> {
    POOL.lock().unwrap_or_else(|e| e.into_inner())
}

/// Removes the entries kept longer than `KEEP_FOR` (dropped by the caller, outside the lock).
fn expire(pool: &mut Vec<Kept>, now: Instant) -> Vec<Kept> {
    let mut gone = Vec::new();
    let mut i = 0;
    while i < pool.len() {
        if now.duration_since(pool[i].since) > KEEP_FOR {
            gone.push(pool.swap_remove(i));
        } else {
            i += 1;
        }
    }
    gone
}

/// Owns the buffer behind an output array (its numpy base); returns it to the pool when the
/// last array viewing it is gone.
#[pyclass(frozen, module = "autoopt._native")]
struct OutputBuffer {
    backing: Option<Py<PyArray1<f64>>>,
    len: usize,
}

impl Drop for OutputBuffer {
    fn drop(&mut self) {
        let Some(arr) = self.backing.take() else { return };
        let bytes = self.len * 8;
        let cap = max_kept();
        let (gone, refused) = {
            let mut pool = lock();
            let now = Instant::now();
            let mut gone = expire(&mut pool, now);
            if bytes > cap {
                (gone, Some(arr))
            } else {
                // the newest is kept: the oldest go until this one fits
                let mut kept: usize = pool.iter().map(|k| k.len * 8).sum();
                while kept + bytes > cap && !pool.is_empty() {
                    let oldest = (0..pool.len()).min_by_key(|&i| pool[i].since).unwrap_or(0);
                    kept -= pool[oldest].len * 8;
                    gone.push(pool.swap_remove(oldest));
                }
                pool.push(Kept { arr, len: self.len, since: now });
                (gone, None)
            }
        };
        // numpy frees these (no Python code of ours runs, the lock is released)
        drop(gone);
        drop(refused);
    }
}

/// A new float64 output of `n` elements, uninitialised (the caller writes every element):
/// on a kept buffer of the same size when there is one.
pub fn output<'py>(py: Python<'py>, n: usize) -> Bound<'py, PyArray1<f64>> {
    if n.saturating_mul(8) < MIN_BYTES || max_kept() == 0 {
        return new_f64(py, n);
    }
    let (found, gone) = {
        let mut pool = lock();
        let gone = expire(&mut pool, Instant::now());
        let at = pool.iter().position(|k| k.len == n);
        (at.map(|i| pool.swap_remove(i)), gone)
    };
    drop(gone);
    let backing = match found {
        Some(k) => k.arr,
        None => new_f64(py, n).unbind(),
    };
    let ptr = backing.bind(py).data();
    let owner = match Bound::new(py, OutputBuffer { backing: Some(backing), len: n }) {
        Ok(o) => o,
        // (creating a small object failed: fall back to a plain array)
        Err(_) => return new_f64(py, n),
    };
    // SAFETY: `ptr` points to n f64 owned by the backing array, which `owner` keeps alive and
    // unmoved (numpy never reallocates it: Python never sees it) until `owner` is dropped, and
    // `owner` is the new array's base.
    unsafe {
        let view = ArrayView1::from_shape_ptr(n, ptr as *const f64);
        PyArray1::borrow_from_array(&view, owner.into_any())
    }
}

/// Releases every kept output buffer; returns the bytes released.
#[pyfunction]
pub fn release_output_buffers() -> usize {
    let all: Vec<Kept> = std::mem::take(&mut *lock());
    let bytes = all.iter().map(|k| k.len * 8).sum();
    drop(all);
    bytes
}

/// (buffers kept, bytes kept).
#[pyfunction]
pub fn output_buffers_kept() -> (usize, usize) {
    let pool = lock();
    (pool.len(), pool.iter().map(|k| k.len * 8).sum())
}
