//! The few msgpack pieces the router needs: a strict reader for flat events and a writer that
//! produces exactly the bytes msgspec's encoder does (so a routed signal built here and one
//! built by `autoopt.events.encode` are identical).
//!
//! The reader never panics and accepts a *subset* of what msgspec accepts: whatever it cannot
//! vouch for (ext types, non-str map keys below the top level, nesting deeper than
//! `MAX_DEPTH`, integers beyond 64 bits) is `Unsupported`, and the caller hands the message to
//! the Python path, which either decodes it or rejects it with msgspec's own error.

pub const MAX_DEPTH: usize = 32;

/// Why a value was not read.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ReadError {
    /// Truncated or not msgpack: msgspec would reject it too.
    Malformed,
    /// Possibly valid, but outside what this reader handles.
    Unsupported,
}

/// A scalar or container header, as read.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Value<'a> {
    Nil,
    Bool(bool),
    Int(i64),
    /// An unsigned integer above `i64::MAX`.
    UInt(u64),
    Float(f64),
    Str(&'a str),
    Bin(&'a [u8]),
    Array(usize),
    Map(usize),
}

/// A cursor over one msgpack buffer.
pub struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    pub fn new(buf: &'a [u8]) -> Self {
        Reader { buf, pos: 0 }
    }

    pub fn at_end(&self) -> bool {
        self.pos == self.buf.len()
    }

    fn take(&mut self, n: usize) -> Result<&'a [u8], ReadError> {
        let end = self.pos.checked_add(n).ok_or(ReadError::Malformed)?;
        let s = self.buf.get(self.pos..end).ok_or(ReadError::Malformed)?;
        self.pos = end;
        Ok(s)
    }

    fn byte(&mut self) -> Result<u8, ReadError> {
        Ok(self.take(1)?[0])
    }

    fn be<const N: usize>(&mut self) -> Result<[u8; N], ReadError> {
        let mut out = [0u8; N];
        out.copy_from_slice(self.take(N)?);
        Ok(out)
    }

    fn str_of(&mut self, n: usize) -> Result<Value<'a>, ReadError> {
        let b = self.take(n)?;
        std::str::from_utf8(b).map(Value::Str).map_err(|_| ReadError::Malformed)
    }

    /// The next value (for arrays and maps: their length; the items follow).
    pub fn value(&mut self) -> Result<Value<'a>, ReadError> {
        let b = self.byte()?;
        Ok(match b {
            0x00..=0x7f => Value::Int(b as i64),
            0x80..=0x8f => Value::Map((b & 0x0f) as usize),
            0x90..=0x9f => Value::Array((b & 0x0f) as usize),
            0xa0..=0xbf => return self.str_of((b & 0x1f) as usize),
            0xc0 => Value::Nil,
            0xc2 => Value::Bool(false),
            0xc3 => Value::Bool(true),
            0xc4 => {
                let n = self.byte()? as usize;
                Value::Bin(self.take(n)?)
            }
            0xc5 => {
                let n = u16::from_be_bytes(self.be()?) as usize;
                Value::Bin(self.take(n)?)
            }
            0xc6 => {
                let n = u32::from_be_bytes(self.be()?) as usize;
                Value::Bin(self.take(n)?)
            }
            0xca => Value::Float(f32::from_be_bytes(self.be()?) as f64),
            0xcb => Value::Float(f64::from_be_bytes(self.be()?)),
            0xcc => Value::Int(self.byte()? as i64),
            0xcd => Value::Int(u16::from_be_bytes(self.be()?) as i64),
            0xce => Value::Int(u32::from_be_bytes(self.be()?) as i64),
            0xcf => {
                let v = u64::from_be_bytes(self.be()?);
                if v > i64::MAX as u64 {
                    Value::UInt(v)
                } else {
                    Value::Int(v as i64)
                }
            }
            0xd0 => Value::Int(i8::from_be_bytes(self.be()?) as i64),
            0xd1 => Value::Int(i16::from_be_bytes(self.be()?) as i64),
            0xd2 => Value::Int(i32::from_be_bytes(self.be()?) as i64),
            0xd3 => Value::Int(i64::from_be_bytes(self.be()?)),
            0xd9 => {
                let n = self.byte()? as usize;
                return self.str_of(n);
            }
            0xda => {
                let n = u16::from_be_bytes(self.be()?) as usize;
                return self.str_of(n);
            }
            0xdb => {
                let n = u32::from_be_bytes(self.be()?) as usize;
                return self.str_of(n);
            }
            0xdc => Value::Array(u16::from_be_bytes(self.be()?) as usize),
            0xdd => Value::Array(u32::from_be_bytes(self.be()?) as usize),
            0xde => Value::Map(u16::from_be_bytes(self.be()?) as usize),
            0xdf => Value::Map(u32::from_be_bytes(self.be()?) as usize),
            0xe0..=0xff => Value::Int((b as i8) as i64),
            // 0xc1 is never used; 0xc7-0xc9 and 0xd4-0xd8 are ext types
            0xc1 => return Err(ReadError::Malformed),
            _ => return Err(ReadError::Unsupported),
        })
    }

    /// A str (map keys, string fields).
    pub fn str(&mut self) -> Result<&'a str, ReadError> {
        match self.value()? {
            Value::Str(s) => Ok(s),
            _ => Err(ReadError::Unsupported),
        }
    }

    /// Skips one complete value, checking it the way msgspec would decode it as `Any`: maps
    /// need str keys (anything else is left to msgspec: `Unsupported`).
    pub fn skip(&mut self) -> Result<(), ReadError> {
        self.skip_at(0)
    }

    fn skip_at(&mut self, depth: usize) -> Result<(), ReadError> {
        if depth > MAX_DEPTH {
            return Err(ReadError::Unsupported);
        }
        match self.value()? {
            Value::Array(n) => {
                for _ in 0..n {
                    self.skip_at(depth + 1)?;
                }
            }
            Value::Map(n) => {
                for _ in 0..n {
                    self.str()?;
                    self.skip_at(depth + 1)?;
                }
            }
            _ => {}
        }
        Ok(())
    }
}

// ------------------------------------------------------------------------------ the writer

pub fn write_map_header(out: &mut Vec<u8>, n: usize) {
    if n < 16 {
        out.push(0x80 | n as u8);
    } else if n < 1 << 16 {
        out.push(0xde);
        out.extend_from_slice(&(n as u16).to_be_bytes());
    } else {
        out.push(0xdf);
        out.extend_from_slice(&(n as u32).to_be_bytes());
    }
}

pub fn write_str(out: &mut Vec<u8>, s: &str) {
    let n = s.len();
    if n < 32 {
        out.push(0xa0 | n as u8);
    } else if n < 1 << 8 {
        out.push(0xd9);
        out.push(n as u8);
    } else if n < 1 << 16 {
        out.push(0xda);
        out.extend_from_slice(&(n as u16).to_be_bytes());
    } else {
        out.push(0xdb);
        out.extend_from_slice(&(n as u32).to_be_bytes());
    }
    out.extend_from_slice(s.as_bytes());
}

/// The smallest encoding of `v`, as msgspec picks it (non-negative values as unsigned).
pub fn write_int(out: &mut Vec<u8>, v: i64) {
    if v >= 0 {
        let u = v as u64;
        if u < 128 {
            out.push(u as u8);
        } else if u < 1 << 8 {
            out.push(0xcc);
            out.push(u as u8);
        } else if u < 1 << 16 {
            out.push(0xcd);
            out.extend_from_slice(&(u as u16).to_be_bytes());
        } else if u < 1 << 32 {
            out.push(0xce);
            out.extend_from_slice(&(u as u32).to_be_bytes());
        } else {
            out.push(0xcf);
            out.extend_from_slice(&u.to_be_bytes());
        }
    } else if v >= -32 {
        out.push(v as i8 as u8);
    } else if v >= i8::MIN as i64 {
        out.push(0xd0);
        out.push(v as i8 as u8);
    } else if v >= i16::MIN as i64 {
        out.push(0xd1);
        out.extend_from_slice(&(v as i16).to_be_bytes());
    } else if v >= i32::MIN as i64 {
        out.push(0xd2);
        out.extend_from_slice(&(v as i32).to_be_bytes());
    } else {
        out.push(0xd3);
        out.extend_from_slice(&v.to_be_bytes());
    }
}

/// msgspec writes every float as float64.
pub fn write_f64(out: &mut Vec<u8>, v: f64) {
    out.push(0xcb);
    out.extend_from_slice(&v.to_be_bytes());
}

pub fn write_bool(out: &mut Vec<u8>, v: bool) {
    out.push(if v { 0xc3 } else { 0xc2 });
}

pub fn write_nil(out: &mut Vec<u8>) {
    out.push(0xc0);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn int_bytes(v: i64) -> Vec<u8> {
        let mut out = Vec::new();
        write_int(&mut out, v);
        out
    }

    #[test]
    fn ints_take_the_smallest_encoding_and_read_back() {
        let cases: &[(i64, &[u8])] = &[
            (0, &[0x00]),
            (127, &[0x7f]),
            (128, &[0xcc, 0x80]),
            (255, &[0xcc, 0xff]),
            (256, &[0xcd, 0x01, 0x00]),
            (65_536, &[0xce, 0x00, 0x01, 0x00, 0x00]),
            (1 << 32, &[0xcf, 0, 0, 0, 1, 0, 0, 0, 0]),
            (-1, &[0xff]),
            (-32, &[0xe0]),
            (-33, &[0xd0, 0xdf]),
            (-129, &[0xd1, 0xff, 0x7f]),
            (-32_769, &[0xd2, 0xff, 0xff, 0x7f, 0xff]),
            (i64::MIN, &[0xd3, 0x80, 0, 0, 0, 0, 0, 0, 0]),
        ];
        for &(v, want) in cases {
            let got = int_bytes(v);
            assert_eq!(got, want, "{v}");
            assert_eq!(Reader::new(&got).value(), Ok(Value::Int(v)));
        }
    }

    #[test]
    fn strings_pick_their_header_by_length() {
        for (n, head) in [(0usize, 0xa0u8), (31, 0xbf), (32, 0xd9), (255, 0xd9), (256, 0xda), (65_536, 0xdb)] {
            let s = "x".repeat(n);
            let mut out = Vec::new();
            write_str(&mut out, &s);
            assert_eq!(out[0], head, "length {n}");
            let mut r = Reader::new(&out);
            assert_eq!(r.str(), Ok(s.as_str()));
            assert!(r.at_end());
        }
    }

    #[test]
    fn truncated_invalid_and_unsupported_input_is_reported_not_panicked() {
        assert_eq!(Reader::new(&[0xcb, 0, 0]).value(), Err(ReadError::Malformed));
        assert_eq!(Reader::new(&[0xa3, b'a']).value(), Err(ReadError::Malformed));
        assert_eq!(Reader::new(&[0xa2, 0xff, 0xfe]).value(), Err(ReadError::Malformed)); // not UTF-8
        assert_eq!(Reader::new(&[0xc1]).value(), Err(ReadError::Malformed));
        assert_eq!(Reader::new(&[0xd4, 1, 2]).value(), Err(ReadError::Unsupported)); // fixext 1
        assert_eq!(Reader::new(&[0x81, 0x01, 0x02]).skip(), Err(ReadError::Unsupported)); // int key
        let deep: Vec<u8> = std::iter::repeat(0x91).take(MAX_DEPTH + 2).chain([0xc0]).collect();
        assert_eq!(Reader::new(&deep).skip(), Err(ReadError::Unsupported));
        assert_eq!(Reader::new(&[0xdd, 0xff, 0xff, 0xff, 0xff]).skip(), Err(ReadError::Malformed));
    }
}
