//! Versioned little-endian binary format for detector/monitor checkpoints.
//!
//! Layout: `b"AOPT"`, format version (u8), kind tag (u8), payload, CRC-32 (IEEE) of everything
//! before it. Decoding checks magic, version, kind, length and checksum, and never panics:
//! every read is bounds-checked and returns `CodecError` instead.

use std::fmt;

pub const MAGIC: &[u8; 4] = b"AOPT";
pub const FORMAT_VERSION: u8 = 1;

/// Kind tags, one per serializable state type.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
pub enum Kind {
    Adwin = 1,
    PageHinkley = 2,
    Cusum = 3,
    Welford = 4,
    PsiMonitor = 5,
}

impl Kind {
    pub fn name(self) -> &'static str {
        match self {
            Kind::Adwin => "ADWIN",
            Kind::PageHinkley => "PageHinkley",
            Kind::Cusum => "CUSUM",
            Kind::Welford => "Welford",
            Kind::PsiMonitor => "PSIMonitor",
        }
    }

    fn from_u8(v: u8) -> Option<Kind> {
        match v {
            1 => Some(Kind::Adwin),
            2 => Some(Kind::PageHinkley),
            3 => Some(Kind::Cusum),
            4 => Some(Kind::Welford),
            5 => Some(Kind::PsiMonitor),
            _ => None,
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct CodecError(pub String);

impl fmt::Display for CodecError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

fn crc32_table() -> [u32; 256] {
    let mut table = [0u32; 256];
    let mut i = 0;
    while i < 256 {
        let mut c = i as u32;
        let mut k = 0;
        while k < 8 {
            c = if c & 1 != 0 { 0xEDB8_8320 ^ (c >> 1) } else { c >> 1 };
            k += 1;
        }
        table[i] = c;
        i += 1;
    }
    table
}

static CRC_TABLE: std::sync::OnceLock<[u32; 256]> = std::sync::OnceLock::new();

/// CRC-32 (IEEE 802.3, as zlib's `crc32`).
pub fn crc32(data: &[u8]) -> u32 {
    let table = CRC_TABLE.get_or_init(crc32_table);
    let mut c = 0xFFFF_FFFFu32;
    for &b in data {
        c = table[((c ^ b as u32) & 0xFF) as usize] ^ (c >> 8);
    }
    c ^ 0xFFFF_FFFF
}

pub struct Writer {
    buf: Vec<u8>,
}

impl Writer {
    pub fn new(kind: Kind) -> Self {
        let mut buf = Vec::with_capacity(128);
        buf.extend_from_slice(MAGIC);
        buf.push(FORMAT_VERSION);
        buf.push(kind as u8);
        Writer { buf }
    }
    pub fn u8(&mut self, v: u8) -> &mut Self {
        self.buf.push(v);
        self
    }
    pub fn bool(&mut self, v: bool) -> &mut Self {
        self.u8(v as u8)
    }
    pub fn u64(&mut self, v: u64) -> &mut Self {
        self.buf.extend_from_slice(&v.to_le_bytes());
        self
    }
    pub fn i64(&mut self, v: i64) -> &mut Self {
        self.buf.extend_from_slice(&v.to_le_bytes());
        self
    }
    pub fn f64(&mut self, v: f64) -> &mut Self {
        self.buf.extend_from_slice(&v.to_le_bytes());
        self
    }
    pub fn f64s(&mut self, v: &[f64]) -> &mut Self {
        self.u64(v.len() as u64);
        for x in v {
            self.f64(*x);
        }
        self
    }
    pub fn finish(mut self) -> Vec<u8> {
        let c = crc32(&self.buf);
        self.buf.extend_from_slice(&c.to_le_bytes());
        self.buf
    }
}

pub struct Reader<'a> {
    data: &'a [u8],
    pos: usize,
    kind: Kind,
}

impl<'a> Reader<'a> {
    /// Checks header and checksum; the payload is then read field by field.
    pub fn new(data: &'a [u8], expected: Kind) -> Result<Self, CodecError> {
        let name = expected.name();
        if data.len() < 10 {
            return Err(CodecError(format!(
                "{name}.from_bytes: {} bytes is too short for a checkpoint",
                data.len()
            )));
        }
        if &data[..4] != MAGIC {
            return Err(CodecError(format!(
                "{name}.from_bytes: not an autoopt checkpoint (bad magic)"
            )));
        }
        if data[4] != FORMAT_VERSION {
            return Err(CodecError(format!(
                "{name}.from_bytes: unsupported format version {} (this build reads {FORMAT_VERSION})",
                data[4]
            )));
        }
        let kind = match Kind::from_u8(data[5]) {
            Some(k) => k,
            None => {
                return Err(CodecError(format!(
                    "{name}.from_bytes: unknown state kind tag {}",
                    data[5]
                )))
            }
        };
        if kind != expected {
            return Err(CodecError(format!(
                "{name}.from_bytes: bytes hold a {} state, not {name}",
                kind.name()
            )));
        }
        let body = &data[..data.len() - 4];
        let mut tail = [0u8; 4];
        tail.copy_from_slice(&data[data.len() - 4..]);
        if crc32(body) != u32::from_le_bytes(tail) {
            return Err(CodecError(format!(
                "{name}.from_bytes: checksum mismatch (truncated or corrupted bytes)"
            )));
        }
        Ok(Reader { data: body, pos: 6, kind })
    }

    fn take(&mut self, n: usize) -> Result<&'a [u8], CodecError> {
        if self.data.len() - self.pos < n {
            return Err(CodecError(format!(
                "{}.from_bytes: payload ends early",
                self.kind.name()
            )));
        }
        let s = &self.data[self.pos..self.pos + n];
        self.pos += n;
        Ok(s)
    }
    pub fn u8(&mut self) -> Result<u8, CodecError> {
        Ok(self.take(1)?[0])
    }
    pub fn bool(&mut self) -> Result<bool, CodecError> {
        match self.u8()? {
            0 => Ok(false),
            1 => Ok(true),
            v => Err(self.err(&format!("invalid boolean byte {v}"))),
        }
    }
    pub fn u64(&mut self) -> Result<u64, CodecError> {
        let mut b = [0u8; 8];
        b.copy_from_slice(self.take(8)?);
        Ok(u64::from_le_bytes(b))
    }
    pub fn i64(&mut self) -> Result<i64, CodecError> {
        let mut b = [0u8; 8];
        b.copy_from_slice(self.take(8)?);
        Ok(i64::from_le_bytes(b))
    }
    pub fn f64(&mut self) -> Result<f64, CodecError> {
        let mut b = [0u8; 8];
        b.copy_from_slice(self.take(8)?);
        Ok(f64::from_le_bytes(b))
    }
    pub fn f64s(&mut self) -> Result<Vec<f64>, CodecError> {
        let n = self.u64()?;
        let remaining = (self.data.len() - self.pos) as u64;
        if n > remaining / 8 {
            return Err(self.err("array length exceeds payload"));
        }
        (0..n).map(|_| self.f64()).collect()
    }
    pub fn err(&self, what: &str) -> CodecError {
        CodecError(format!("{}.from_bytes: {what}", self.kind.name()))
    }
    /// All payload bytes must have been consumed.
    pub fn finish(self) -> Result<(), CodecError> {
        if self.pos != self.data.len() {
            return Err(self.err("trailing bytes after payload"));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn crc_matches_zlib() {
        assert_eq!(crc32(b"123456789"), 0xCBF4_3926);
        assert_eq!(crc32(b""), 0);
    }

    #[test]
    fn round_trip_and_corruption() {
        let mut w = Writer::new(Kind::Welford);
        w.u64(7).f64(1.5).f64s(&[1.0, 2.0]).bool(true);
        let bytes = w.finish();
        let mut r = Reader::new(&bytes, Kind::Welford).unwrap();
        assert_eq!(r.u64().unwrap(), 7);
        assert_eq!(r.f64().unwrap(), 1.5);
        assert_eq!(r.f64s().unwrap(), vec![1.0, 2.0]);
        assert!(r.bool().unwrap());
        r.finish().unwrap();

        assert!(Reader::new(&bytes, Kind::Adwin).is_err());
        let mut bad = bytes.clone();
        bad[8] ^= 1;
        assert!(Reader::new(&bad, Kind::Welford).is_err());
        assert!(Reader::new(&bytes[..5], Kind::Welford).is_err());
    }
}
