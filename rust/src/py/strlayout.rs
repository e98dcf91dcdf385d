//! Reading list items and ASCII str text in place, from CPython's object layouts.
//!
//! Why: `buckets` over a list of a million str keys spends most of its time in two C-API calls
//! per key (`PyList_GetItem`, `PyUnicode_AsUTF8AndSize`), and C-API calls need the GIL, so the
//! keys could only be read on one thread. The layouts involved are fixed for each CPython
//! version this wheel supports (3.11 to 3.14, standard builds): a list's item array, and a
//! compact ASCII str's length, kind bits and text right after its header. With them, worker
//! threads read keys as plain memory while the calling thread holds the GIL (so no Python code
//! runs and nothing is freed or changed). Anything else (another version, a non-ASCII or
//! non-compact str, a str subclass) is left to the C-API path.
//!
//! The layout is checked once per process against the C API on probe objects; if anything
//! differs the in-place path is never used.

use std::sync::OnceLock;

use pyo3::ffi;
use pyo3::prelude::*;
use pyo3::types::{PyList, PyString};

/// Where a compact ASCII str keeps its text (bytes from the object's start), by version.
#[derive(Clone, Copy, Debug)]
pub struct Layout {
    ascii_text_offset: usize,
}

// PyObject_HEAD (refcount, type) then, for str: length, hash, state; for list: size, items.
const LENGTH_OFFSET: usize = 16;
const STATE_OFFSET: usize = 32;
const LIST_ITEMS_OFFSET: usize = 24;
const COMPACT_BIT: u32 = 1 << 5;
const ASCII_BIT: u32 = 1 << 6;

impl Layout {
    /// The layout of this interpreter, if it is one we know and it passes the probe.
    pub fn get(py: Python<'_>) -> Option<Layout> {
        static L: OnceLock<Option<Layout>> = OnceLock::new();
        *L.get_or_init(|| Self::detect(py))
    }

    fn detect(py: Python<'_>) -> Option<Layout> {
        let v = py.version_info();
        let offset = match (v.major, v.minor) {
            (3, 11) => 48, // PyASCIIObject still ends with the wstr pointer
            (3, 12..=14) => 40,
            _ => return None,
        };
        let layout = Layout { ascii_text_offset: offset };
        layout.probe(py).then_some(layout)
    }

    /// Compares in-place reads with the C API on probe objects.
    fn probe(&self, py: Python<'_>) -> bool {
        let texts = ["", "a", "autoopt layout probe: user-00012345", "é", "😀"];
        let strs: Vec<Bound<'_, PyString>> = texts.iter().map(|t| PyString::new(py, t)).collect();
        let Ok(list) = PyList::new(py, &strs) else { return false };
        // SAFETY: live list of live str objects, GIL held
        let items = unsafe { list_items(&list) };
        if items.len() != texts.len() {
            return false;
        }
        for ((item, s), text) in items.iter().zip(&strs).zip(texts) {
            if *item != s.as_ptr() {
                return false;
            }
            // SAFETY: as above
            let read = unsafe { self.ascii(*item) };
            let want = text.is_ascii().then_some(text.as_bytes());
            // SAFETY: as above
            if read != want || unsafe { self.reader().ascii(*item) } != want {
                return false;
            }
        }
        true
    }

    /// The text of `obj` if it is an exact str stored compact ASCII; None otherwise.
    ///
    /// # Safety
    /// `obj` must be a live object that nobody changes while the slice is used (the GIL is held
    /// by the thread that called into us, and it runs no Python code meanwhile).
    #[inline(always)]
    pub unsafe fn ascii<'a>(&self, obj: *mut ffi::PyObject) -> Option<&'a [u8]> {
        if ffi::Py_TYPE(obj) != std::ptr::addr_of_mut!(ffi::PyUnicode_Type) {
            return None;
        }
        let base = obj as *const u8;
        let state = (base.add(STATE_OFFSET) as *const u32).read();
        if state & (COMPACT_BIT | ASCII_BIT) != COMPACT_BIT | ASCII_BIT {
            return None;
        }
        let len = (base.add(LENGTH_OFFSET) as *const isize).read();
        Some(std::slice::from_raw_parts(base.add(self.ascii_text_offset), len as usize))
    }
}

/// `Layout::ascii` with the str type's address and the text offset in registers: the hot loop
/// of `buckets` reads a million keys through it (the type's address would otherwise be loaded
/// from the GOT, and the offset through a reference, for every key).
#[derive(Clone, Copy, Debug)]
pub struct AsciiReader {
    str_type: usize,
    text_offset: usize,
}

impl Layout {
    pub fn reader(&self) -> AsciiReader {
        AsciiReader { str_type: std::ptr::addr_of_mut!(ffi::PyUnicode_Type) as usize, text_offset: self.ascii_text_offset }
    }
}

impl AsciiReader {
    /// `Layout::ascii`, the same checks and the same text.
    ///
    /// # Safety
    /// As `Layout::ascii`.
    #[inline(always)]
    pub unsafe fn ascii<'a>(&self, obj: *mut ffi::PyObject) -> Option<&'a [u8]> {
        if ffi::Py_TYPE(obj) as usize != self.str_type {
            return None;
        }
        let base = obj as *const u8;
        let state = (base.add(STATE_OFFSET) as *const u32).read();
        let len = (base.add(LENGTH_OFFSET) as *const isize).read();
        if state & (COMPACT_BIT | ASCII_BIT) != COMPACT_BIT | ASCII_BIT {
            return None;
        }
        Some(std::slice::from_raw_parts(base.add(self.text_offset), len as usize))
    }
}

/// The item pointers of a list, in place.
///
/// # Safety
/// `list` must stay unchanged while the slice is used (GIL held, no Python code run).
#[inline]
pub unsafe fn list_items<'a>(list: &Bound<'_, PyList>) -> &'a [*mut ffi::PyObject] {
    let base = list.as_ptr() as *const u8;
    let len = (base.add(LENGTH_OFFSET) as *const isize).read();
    let items = (base.add(LIST_ITEMS_OFFSET) as *const *const *mut ffi::PyObject).read();
    if len == 0 || items.is_null() {
        return &[];
    }
    std::slice::from_raw_parts(items, len as usize)
}
