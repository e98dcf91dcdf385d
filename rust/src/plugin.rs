//! Polars expression-plugin ABI (plugin version 0.1, the one `pyo3-polars` 0.28 / polars-ffi 0.55
//! export), implemented directly over the Arrow C Data Interface.
//!
//! Polars `register_plugin_function` loads this library and calls, for a function `f`:
//! `_polars_plugin_field_f` (output schema) and `_polars_plugin_f` (compute), plus
//! `_polars_plugin_get_version` and `_polars_plugin_get_last_error_message`. Implementing that
//! small C interface here keeps the extension free of the polars Rust crates (polars-plan,
//! polars-io, parquet, tokio), whose build dominates compile time on small machines.
//!
//! Inputs: the series (Float64; the Python side casts) followed by Float64 literal parameters.
//! Output: Float64 with nulls where the indicator is undefined (warm-up rows).

use std::cell::RefCell;
use std::ffi::{c_char, c_void, CStr, CString};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::ptr;

use crate::kernels::ta::Kernel;

#[repr(C)]
pub struct ArrowSchema {
    format: *const c_char,
    name: *const c_char,
    metadata: *const c_char,
    flags: i64,
    n_children: i64,
    children: *mut *mut ArrowSchema,
    dictionary: *mut ArrowSchema,
    release: Option<unsafe extern "C" fn(*mut ArrowSchema)>,
    private_data: *mut c_void,
}

#[repr(C)]
pub struct ArrowArray {
    length: i64,
    null_count: i64,
    offset: i64,
    n_buffers: i64,
    n_children: i64,
    buffers: *mut *const c_void,
    children: *mut *mut ArrowArray,
    dictionary: *mut ArrowArray,
    release: Option<unsafe extern "C" fn(*mut ArrowArray)>,
    private_data: *mut c_void,
}

/// polars-ffi `version_0::SeriesExport`.
#[repr(C)]
pub struct SeriesExport {
    field: *mut ArrowSchema,
    arrays: *mut *mut ArrowArray,
    len: usize,
    release: Option<unsafe extern "C" fn(*mut SeriesExport)>,
    private_data: *mut c_void,
}

/// polars-ffi `version_0::CallerContext`.
#[repr(C)]
pub struct CallerContext {
    bitflags: u64,
}

const ARROW_FLAG_NULLABLE: i64 = 2;

thread_local! {
    static LAST_ERROR: RefCell<CString> = RefCell::new(CString::default());
}

fn set_error(msg: &str) {
    let c = CString::new(msg.replace('\0', " ")).unwrap_or_default();
    LAST_ERROR.with(|e| *e.borrow_mut() = c);
}

/// # Safety
/// Called by polars; returns a pointer valid until the next plugin call on this thread.
#[no_mangle]
pub unsafe extern "C" fn _polars_plugin_get_last_error_message() -> *const c_char {
    LAST_ERROR.with(|e| e.borrow().as_ptr())
}

/// Plugin ABI version 0.1 (major << 16 | minor).
#[no_mangle]
pub extern "C" fn _polars_plugin_get_version() -> u32 {
    1
}

// ---------- export (Rust -> polars) ----------

struct SchemaPrivate {
    _format: CString,
    _name: CString,
}

unsafe extern "C" fn release_schema(s: *mut ArrowSchema) {
    if s.is_null() {
        return;
    }
    let s = &mut *s;
    if !s.private_data.is_null() {
        drop(Box::from_raw(s.private_data as *mut SchemaPrivate));
    }
    s.private_data = ptr::null_mut();
    s.release = None;
}

fn float64_schema(name: &str) -> ArrowSchema {
    let format = CString::new("g").unwrap_or_default();
    let name = CString::new(name.replace('\0', " ")).unwrap_or_default();
    let (fp, np) = (format.as_ptr(), name.as_ptr());
    let private = Box::new(SchemaPrivate { _format: format, _name: name });
    ArrowSchema {
        format: fp,
        name: np,
        metadata: ptr::null(),
        flags: ARROW_FLAG_NULLABLE,
        n_children: 0,
        children: ptr::null_mut(),
        dictionary: ptr::null_mut(),
        release: Some(release_schema),
        private_data: Box::into_raw(private) as *mut c_void,
    }
}

struct ArrayPrivate {
    _values: Vec<f64>,
    _validity: Vec<u8>,
    buffers: [*const c_void; 2],
}

unsafe extern "C" fn release_array(a: *mut ArrowArray) {
    if a.is_null() {
        return;
    }
    let a = &mut *a;
    if !a.private_data.is_null() {
        drop(Box::from_raw(a.private_data as *mut ArrayPrivate));
    }
    a.private_data = ptr::null_mut();
    a.release = None;
}

/// Float64 array; NaN values become nulls.
fn float64_array(values: Vec<f64>) -> ArrowArray {
    let n = values.len();
    let nulls = values.iter().filter(|v| v.is_nan()).count();
    let mut validity = Vec::new();
    if nulls > 0 {
        validity = vec![0u8; n.div_ceil(8)];
        for (i, v) in values.iter().enumerate() {
            if !v.is_nan() {
                validity[i / 8] |= 1 << (i % 8);
            }
        }
    }
    let vptr = if nulls > 0 { validity.as_ptr() as *const c_void } else { ptr::null() };
    let mut private = Box::new(ArrayPrivate {
        buffers: [vptr, values.as_ptr() as *const c_void],
        _values: values,
        _validity: validity,
    });
    let buffers = private.buffers.as_mut_ptr();
    ArrowArray {
        length: n as i64,
        null_count: nulls as i64,
        offset: 0,
        n_buffers: 2,
        n_children: 0,
        buffers,
        children: ptr::null_mut(),
        dictionary: ptr::null_mut(),
        release: Some(release_array),
        private_data: Box::into_raw(private) as *mut c_void,
    }
}

struct ExportPrivate {
    schema: Box<ArrowSchema>,
    arrays: Box<[*mut ArrowArray]>,
}

unsafe extern "C" fn release_export(e: *mut SeriesExport) {
    if e.is_null() {
        return;
    }
    let e = &mut *e;
    if !e.private_data.is_null() {
        let mut private = Box::from_raw(e.private_data as *mut ExportPrivate);
        // The importer moved the arrays out (and releases them); free only their boxes.
        for &a in private.arrays.iter() {
            drop(Box::from_raw(a as *mut std::mem::ManuallyDrop<ArrowArray>));
        }
        if let Some(r) = private.schema.release {
            r(&mut *private.schema);
        }
    }
    e.private_data = ptr::null_mut();
    e.release = None;
}

fn export_series(name: &str, values: Vec<f64>) -> SeriesExport {
    let schema = Box::new(float64_schema(name));
    let array = Box::into_raw(Box::new(float64_array(values)));
    let mut arrays: Box<[*mut ArrowArray]> = vec![array].into_boxed_slice();
    let arrays_ptr = arrays.as_mut_ptr();
    let mut private = Box::new(ExportPrivate { schema, arrays });
    let field = &mut *private.schema as *mut ArrowSchema;
    SeriesExport {
        field,
        arrays: arrays_ptr,
        len: 1,
        release: Some(release_export),
        private_data: Box::into_raw(private) as *mut c_void,
    }
}

// ---------- import (polars -> Rust) ----------

/// An input series read into a contiguous float64 buffer (nulls become NaN).
struct Input {
    name: String,
    values: Vec<f64>,
}

unsafe fn cstr(p: *const c_char) -> String {
    if p.is_null() {
        String::new()
    } else {
        CStr::from_ptr(p).to_string_lossy().into_owned()
    }
}

/// Reads one exported series and releases it (the plugin owns its inputs).
unsafe fn take_input(e: *mut SeriesExport) -> Result<Input, String> {
    let e = &mut *e;
    let result = (|| {
        if e.field.is_null() {
            return Err("input series has no schema".to_string());
        }
        let field = &*e.field;
        let format = cstr(field.format);
        let name = cstr(field.name);
        if format != "g" {
            return Err(format!("input {name:?} must be Float64 (Arrow format 'g'), got format {format:?}"));
        }
        let mut values = Vec::new();
        for k in 0..e.len {
            let arr = &**e.arrays.add(k);
            if arr.n_buffers < 2 || arr.buffers.is_null() {
                return Err(format!("input {name:?}: malformed Float64 array"));
            }
            let (len, off) = (arr.length as usize, arr.offset as usize);
            let data = *arr.buffers.add(1) as *const f64;
            let validity = *arr.buffers as *const u8;
            if len == 0 {
                continue;
            }
            if data.is_null() {
                return Err(format!("input {name:?}: Float64 array without values"));
            }
            let vals = std::slice::from_raw_parts(data.add(off), len);
            if arr.null_count == 0 || validity.is_null() {
                values.extend_from_slice(vals);
            } else {
                values.extend(vals.iter().enumerate().map(|(i, &v)| {
                    let bit = off + i;
                    if *validity.add(bit / 8) & (1 << (bit % 8)) != 0 {
                        v
                    } else {
                        f64::NAN
                    }
                }));
            }
        }
        Ok(Input { name, values })
    })();
    // release the arrays (ownership moved to us), then the export itself
    for k in 0..e.len {
        let arr = *e.arrays.add(k);
        if !arr.is_null() {
            if let Some(r) = (*arr).release {
                r(arr);
            }
        }
    }
    if let Some(r) = e.release {
        r(e);
    }
    result
}

unsafe fn take_inputs(e: *mut SeriesExport, n: usize) -> Result<Vec<Input>, String> {
    let mut out = Vec::with_capacity(n);
    let mut err = None;
    for i in 0..n {
        match take_input(e.add(i)) {
            Ok(v) => out.push(v),
            Err(m) => {
                if err.is_none() {
                    err = Some(m)
                }
            }
        }
    }
    match err {
        Some(m) => Err(m),
        None => Ok(out),
    }
}

fn param(inputs: &[Input], i: usize, what: &str) -> Result<i64, String> {
    let v = inputs
        .get(i)
        .and_then(|s| s.values.first().copied())
        .ok_or_else(|| format!("missing parameter {what}"))?;
    if !(v.is_finite() && v.fract() == 0.0) {
        return Err(format!("parameter {what} must be an integer, got {v}"));
    }
    Ok(v as i64)
}

fn compute(function: &str, inputs: &[Input]) -> Result<(String, Vec<f64>), String> {
    let first = inputs.first().ok_or("no input series")?;
    let n = first.values.len();
    let (indicator, output) = match function {
        "atr" => {
            if inputs.len() != 4 {
                return Err("atr takes high, low, close and period".into());
            }
            if inputs[1].values.len() != n || inputs[2].values.len() != n {
                return Err("high, low and close must have the same length".into());
            }
            (crate::kernels::fused::parse_indicator("atr", &[param(inputs, 3, "period")?])?, 0)
        }
        "macd" | "macd_signal" | "macd_hist" => {
            let p = [param(inputs, 1, "fast")?, param(inputs, 2, "slow")?, param(inputs, 3, "signal")?];
            let out = match function {
                "macd" => 0,
                "macd_signal" => 1,
                _ => 2,
            };
            (crate::kernels::fused::parse_indicator("macd", &p)?, out)
        }
        other => (crate::kernels::fused::parse_indicator(other, &[param(inputs, 1, "period")?])?, 0),
    };
    let empty: &[f64] = &[];
    let (x, h, l) = if indicator.needs_high_low() {
        (inputs[2].values.as_slice(), inputs[0].values.as_slice(), inputs[1].values.as_slice())
    } else {
        (first.values.as_slice(), empty, empty)
    };
    let mut kernel: Box<dyn Kernel + '_> = indicator.kernel(x, h, l, x);
    let mut outs: Vec<Vec<f64>> = (0..indicator.n_outputs()).map(|_| vec![0.0; n]).collect();
    {
        let mut views: Vec<&mut [f64]> = outs.iter_mut().map(|v| v.as_mut_slice()).collect();
        kernel.run(0, n, &mut views);
    }
    let name = if indicator.needs_high_low() { inputs[2].name.clone() } else { first.name.clone() };
    Ok((name, outs.swap_remove(output)))
}

unsafe fn call(function: &str, e: *mut SeriesExport, n: usize, ret: *mut SeriesExport) {
    let r = catch_unwind(AssertUnwindSafe(|| -> Result<(), String> {
        let inputs = take_inputs(e, n)?;
        let (name, values) = compute(function, &inputs)?;
        *ret = export_series(&name, values);
        Ok(())
    }));
    match r {
        Ok(Ok(())) => {}
        Ok(Err(m)) => set_error(&format!("autoopt.{function}: {m}")),
        Err(_) => set_error(&format!("autoopt.{function}: internal error (panic)")),
    }
}

unsafe fn field(fields: *mut ArrowSchema, len: usize, ret: *mut ArrowSchema, pick_third: bool) {
    let r = catch_unwind(AssertUnwindSafe(|| {
        let idx = if pick_third && len >= 3 { 2 } else { 0 };
        let name = if len > idx { cstr((*fields.add(idx)).name) } else { String::new() };
        *ret = float64_schema(&name);
    }));
    if r.is_err() {
        set_error("autoopt: internal error while computing the output field");
    }
}

macro_rules! plugin_fn {
    ($name:literal, $compute:ident, $field:ident, $third:expr) => {
        /// # Safety
        /// Called by polars with valid exports per the plugin ABI.
        #[no_mangle]
        pub unsafe extern "C" fn $compute(
            e: *mut SeriesExport,
            input_len: usize,
            _kwargs_ptr: *const u8,
            _kwargs_len: usize,
            return_value: *mut SeriesExport,
            _context: *mut CallerContext,
        ) {
            call($name, e, input_len, return_value)
        }

        /// # Safety
        /// Called by polars with valid schemas per the plugin ABI.
        #[no_mangle]
        pub unsafe extern "C" fn $field(
            fields: *mut ArrowSchema,
            len: usize,
            return_value: *mut ArrowSchema,
            _kwargs_ptr: *const u8,
            _kwargs_len: usize,
        ) {
            field(fields, len, return_value, $third)
        }
    };
}

plugin_fn!("sma", _polars_plugin_sma, _polars_plugin_field_sma, false);
plugin_fn!("ema", _polars_plugin_ema, _polars_plugin_field_ema, false);
plugin_fn!("rsi", _polars_plugin_rsi, _polars_plugin_field_rsi, false);
plugin_fn!("stddev", _polars_plugin_stddev, _polars_plugin_field_stddev, false);
plugin_fn!("roc", _polars_plugin_roc, _polars_plugin_field_roc, false);
plugin_fn!("returns", _polars_plugin_returns, _polars_plugin_field_returns, false);
plugin_fn!("zscore", _polars_plugin_zscore, _polars_plugin_field_zscore, false);
plugin_fn!("atr", _polars_plugin_atr, _polars_plugin_field_atr, true);
plugin_fn!("macd", _polars_plugin_macd, _polars_plugin_field_macd, false);
plugin_fn!("macd_signal", _polars_plugin_macd_signal, _polars_plugin_field_macd_signal, false);
plugin_fn!("macd_hist", _polars_plugin_macd_hist, _polars_plugin_field_macd_hist, false);

#[cfg(test)]
mod tests {
    use super::*;

    fn literal(v: f64) -> SeriesExport {
        export_series("lit", vec![v])
    }

    #[test]
    fn round_trip_through_the_abi() {
        let x: Vec<f64> = (0..50).map(|i| 100.0 + (i as f64).sin()).collect();
        let mut inputs = [export_series("close", x.clone()), literal(5.0)];
        let mut ret = SeriesExport { field: ptr::null_mut(), arrays: ptr::null_mut(), len: 0, release: None, private_data: ptr::null_mut() };
        unsafe {
            _polars_plugin_sma(inputs.as_mut_ptr(), 2, ptr::null(), 0, &mut ret, ptr::null_mut());
            assert!(!ret.private_data.is_null(), "plugin failed");
            let out = take_input(&mut ret).unwrap();
            assert_eq!(out.name, "close");
            assert!(out.values[3].is_nan()); // nulls read back as NaN
            let want: f64 = x[..5].iter().sum::<f64>() / 5.0;
            assert!((out.values[4] - want).abs() < 1e-12);
        }
    }

    #[test]
    fn bad_parameter_sets_error() {
        let mut inputs = [export_series("close", vec![1.0, 2.0]), literal(0.0)];
        let mut ret = SeriesExport { field: ptr::null_mut(), arrays: ptr::null_mut(), len: 0, release: None, private_data: ptr::null_mut() };
        unsafe {
            _polars_plugin_ema(inputs.as_mut_ptr(), 2, ptr::null(), 0, &mut ret, ptr::null_mut());
            assert!(ret.private_data.is_null());
            let msg = CStr::from_ptr(_polars_plugin_get_last_error_message()).to_string_lossy().into_owned();
            assert!(msg.contains("period"), "{msg}");
        }
    }
}
