//! GrowthBook-compatible variant hashing.
//!
//! FNV-1a 32-bit over UTF-16 code units (JavaScript's `charCodeAt`), so buckets agree with
//! GrowthBook SDKs in every language. v2: `fnv(str(fnv(seed + key))) % 10000 / 10000`;
//! v1: `fnv(key + seed) % 1000 / 1000`.

pub const FNV_OFFSET: u32 = 0x811C_9DC5;
pub const FNV_PRIME: u32 = 0x0100_0193;

/// Continues an FNV-1a state over the UTF-16 code units of `s`.
#[inline]
pub fn fnv1a_utf16(mut h: u32, s: &str) -> u32 {
    if s.is_ascii() {
        for &b in s.as_bytes() {
            h = (h ^ b as u32).wrapping_mul(FNV_PRIME);
        }
    } else {
        for u in s.encode_utf16() {
            h = (h ^ u as u32).wrapping_mul(FNV_PRIME);
        }
    }
    h
}

/// Continues an FNV-1a state over raw UTF-16 code units.
#[inline]
pub fn fnv1a_units(mut h: u32, units: &[u16]) -> u32 {
    for &u in units {
        h = (h ^ u as u32).wrapping_mul(FNV_PRIME);
    }
    h
}

/// FNV-1a over the decimal digits of `v` (JavaScript's `String(v)` for an unsigned 32-bit int).
#[inline]
pub fn fnv1a_decimal(v: u32) -> u32 {
    let mut digits = [0u8; 10];
    let mut n = v;
    let mut i = 10;
    loop {
        i -= 1;
        digits[i] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    let mut h = FNV_OFFSET;
    for &d in &digits[i..] {
        h = (h ^ d as u32).wrapping_mul(FNV_PRIME);
    }
    h
}

/// FNV states after the decimal digits of q, for q in 0..=42949 (u32::MAX / 100000).
fn high_digit_table() -> &'static [u32] {
    static T: std::sync::OnceLock<Vec<u32>> = std::sync::OnceLock::new();
    T.get_or_init(|| (0..=(u32::MAX / 100_000)).map(fnv1a_decimal).collect())
}

/// `fnv1a_decimal` via a table for the leading digits: v = q * 100000 + r hashes as the
/// digits of q followed by r zero-padded to five digits.
#[inline]
pub fn fnv1a_decimal_fast(table: &[u32], v: u32) -> u32 {
    if v < 100_000 {
        return fnv1a_decimal(v);
    }
    let (q, r) = (v / 100_000, v % 100_000);
    let mut h = table[q as usize];
    for d in [r / 10_000, r / 1_000 % 10, r / 100 % 10, r / 10 % 10, r % 10] {
        h = (h ^ (b'0' as u32 + d)).wrapping_mul(FNV_PRIME);
    }
    h
}

/// v2 bucket from the FNV state after `seed + key`.
#[inline]
pub fn bucket_v2_from_state(state: u32) -> f64 {
    (fnv1a_decimal(state) % 10000) as f64 / 10000.0
}

/// v2 buckets for many inner states (the FNV states after `seed + key`), in parallel when large.
pub fn buckets_v2_from_states(states: &[u32], out: &mut [f64], threads: usize) {
    let table = high_digit_table();
    let work = |st: &[u32], o: &mut [f64]| {
        for (d, &s) in o.iter_mut().zip(st) {
            *d = (fnv1a_decimal_fast(table, s) % 10000) as f64 / 10000.0;
        }
    };
    if threads < 2 || states.len() < 200_000 {
        work(states, out);
        return;
    }
    let half = states.len() / 2;
    let (s1, s2) = states.split_at(half);
    let (o1, o2) = out.split_at_mut(half);
    std::thread::scope(|sc| {
        sc.spawn(|| work(s2, o2));
        work(s1, o1);
    });
}

/// FNV-1a states of four keys at once (independent chains interleave in the CPU).
#[inline]
pub fn fnv1a_ascii4(seed_state: u32, keys: [&[u8]; 4]) -> [u32; 4] {
    let mut h = [seed_state; 4];
    let common = keys.iter().map(|k| k.len()).min().unwrap_or(0);
    for i in 0..common {
        for j in 0..4 {
            h[j] = (h[j] ^ keys[j][i] as u32).wrapping_mul(FNV_PRIME);
        }
    }
    for j in 0..4 {
        for &b in &keys[j][common..] {
            h[j] = (h[j] ^ b as u32).wrapping_mul(FNV_PRIME);
        }
    }
    h
}

/// Tables the v2 bucket stage reads (built once per process).
#[derive(Clone, Copy)]
pub struct V2Tables {
    high: &'static [u32],
    /// `m as f64 / 10000.0` for m < 10000: the final division, looked up (exactly the same
    /// values) instead of computed per key
    frac: &'static [f64],
}

fn fraction_table() -> &'static [f64] {
    static T: std::sync::OnceLock<Vec<f64>> = std::sync::OnceLock::new();
    T.get_or_init(|| (0..10_000u32).map(|m| m as f64 / 10000.0).collect())
}

impl V2Tables {
    pub fn get() -> Self {
        V2Tables { high: high_digit_table(), frac: fraction_table() }
    }

    /// `bucket_v2_from_state`, exactly: the leading digits from a table, the last five
    /// (zero-padded) peeled off a 32.32 fixed-point fraction by multiplying by 10 (exact for
    /// every r < 100000, see the tests) instead of a division per digit.
    #[inline(always)]
    pub fn bucket(&self, state: u32) -> f64 {
        let h = if state < 100_000 {
            fnv1a_decimal(state)
        } else {
            let (q, r) = (state / 100_000, state % 100_000);
            let mut h = self.high[q as usize];
            // r / 10^4 as 32.32 fixed point, rounded up: each step yields the next digit
            let mut y = r as u64 * 429_497;
            for _ in 0..5 {
                h = (h ^ (b'0' as u32 + (y >> 32) as u32)).wrapping_mul(FNV_PRIME);
                y = (y & 0xFFFF_FFFF) * 10;
            }
            h
        };
        self.frac[(h % 10_000) as usize]
    }
}

/// A key for `buckets_v2_keys`: ASCII text (its bytes are its UTF-16 code units), or an FNV
/// state already computed (non-ASCII keys hashed by the caller).
#[derive(Clone, Copy, Debug)]
pub enum Key<'a> {
    Ascii(&'a [u8]),
    State(u32),
}

/// Length of the common prefix of `a` and `b`, eight bytes at a time.
#[inline(always)]
fn common_prefix(a: &[u8], b: &[u8]) -> usize {
    let n = a.len().min(b.len());
    let word = |s: &[u8], i: usize| u64::from_le_bytes(s[i..i + 8].try_into().unwrap_or([0; 8]));
    let mut i = 0;
    while i + 8 <= n {
        let x = word(a, i) ^ word(b, i);
        if x != 0 {
            return i + (x.trailing_zeros() / 8) as usize;
        }
        i += 8;
    }
    if i < n && n >= 8 {
        // the last eight bytes overlap the equal part already seen
        let x = word(a, n - 8) ^ word(b, n - 8);
        return if x == 0 { n } else { n - 8 + (x.trailing_zeros() / 8) as usize };
    }
    while i < n && a[i] == b[i] {
        i += 1;
    }
    i
}

/// Prefix states kept from the previous key (FNV-1a is a left fold: keys that share a prefix
/// share the state after it, so only the differing tail is hashed).
const PREFIX_STATES: usize = 64;

/// v2 buckets of `keys` (each continuing `seed_state`) into `out` (same length).
///
/// Consecutive keys often share a prefix (`user-00012345`, `user-00012346`): the FNV state
/// after the common prefix with the previous ASCII key is reused, so the result is the same
/// fold, computed over the differing tail only.
pub fn buckets_v2_keys(tables: &V2Tables, seed_state: u32, keys: &[Key<'_>], out: &mut [f64]) {
    let mut states = [seed_state; PREFIX_STATES + 1];
    let mut prev: &[u8] = &[];
    for (key, o) in keys.iter().zip(out.iter_mut()) {
        let s = match *key {
            Key::Ascii(b) => {
                let start = common_prefix(prev, b).min(PREFIX_STATES);
                let mut h = states[start];
                for (i, &c) in b.iter().enumerate().skip(start) {
                    h = (h ^ c as u32).wrapping_mul(FNV_PRIME);
                    if i < PREFIX_STATES {
                        states[i + 1] = h;
                    }
                }
                prev = b;
                h
            }
            Key::State(s) => s,
        };
        *o = tables.bucket(s);
    }
}

pub fn bucket_v2(seed: &str, key: &str) -> f64 {
    bucket_v2_from_state(fnv1a_utf16(fnv1a_utf16(FNV_OFFSET, seed), key))
}

pub fn bucket_v1(seed: &str, key: &str) -> f64 {
    (fnv1a_utf16(fnv1a_utf16(FNV_OFFSET, key), seed) % 1000) as f64 / 1000.0
}

/// GrowthBook `getBucketRanges`: coverage clamped to [0, 1]; weights replaced by equal weights
/// when their count differs from `n` or their sum is outside [0.99, 1.01].
pub fn bucket_ranges(n: usize, coverage: f64, weights: Option<&[f64]>) -> Vec<(f64, f64)> {
    let coverage = if coverage < 0.0 {
        0.0
    } else if coverage > 1.0 {
        1.0
    } else {
        coverage
    };
    let equal = || vec![1.0 / n as f64; n];
    let w: Vec<f64> = match weights {
        Some(w) if w.len() == n => {
            let total: f64 = w.iter().fold(0.0, |a, b| a + b);
            if !(0.99..=1.01).contains(&total) {
                equal()
            } else {
                w.to_vec()
            }
        }
        _ => equal(),
    };
    let mut cumulative = 0.0;
    w.iter()
        .map(|&wi| {
            let start = cumulative;
            cumulative += wi;
            (start, start + coverage * wi)
        })
        .collect()
}

/// GrowthBook `chooseVariation`: index of the range holding `bucket`, else None.
pub fn choose_variation(bucket: f64, ranges: &[(f64, f64)]) -> Option<usize> {
    ranges.iter().position(|&(lo, hi)| bucket >= lo && bucket < hi)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn growthbook_published_cases() {
        // From GrowthBook's SDK spec cases.json, "hash" section.
        let v1 = [("", "a", 0.22), ("", "b", 0.077), ("b", "a", 0.946), ("ef", "d", 0.652),
                  ("asdf", "8952klfjas09ujk", 0.549), ("", "123", 0.011), ("", "___)((*\":&", 0.563)];
        for (seed, key, want) in v1 {
            assert_eq!(bucket_v1(seed, key), want, "v1 {seed:?} {key:?}");
        }
        let v2 = [("seed", "a", 0.0505), ("seed", "b", 0.2696), ("foo", "ab", 0.2575),
                  ("foo", "def", 0.2019), ("89123klj", "8952klfjas09ujkasdf", 0.124),
                  ("90850943850283058242805", "123", 0.7516),
                  ("()**(%$##$%#$#", "___)((*\":&", 0.0128)];
        for (seed, key, want) in v2 {
            assert_eq!(bucket_v2(seed, key), want, "v2 {seed:?} {key:?}");
        }
    }

    #[test]
    fn table_decimal_hash_is_exact() {
        let t = high_digit_table();
        for v in [0u32, 9, 99_999, 100_000, 100_001, 1_234_567_890, 4_294_967_295, 4_294_900_000, 3_000_000_007] {
            assert_eq!(fnv1a_decimal_fast(t, v), fnv1a_decimal(v), "{v}");
        }
        let states: Vec<u32> = (0..1000u32).map(|i| i.wrapping_mul(2_654_435_761)).collect();
        let mut out = vec![0.0; states.len()];
        buckets_v2_from_states(&states, &mut out, 2);
        for (s, o) in states.iter().zip(&out) {
            assert_eq!(*o, bucket_v2_from_state(*s));
        }
        let keys: [&[u8]; 4] = [b"abc", b"user-1", b"", b"zz"];
        let got = fnv1a_ascii4(FNV_OFFSET, keys);
        for j in 0..4 {
            assert_eq!(got[j], fnv1a_utf16(FNV_OFFSET, std::str::from_utf8(keys[j]).unwrap()));
        }
    }

    #[test]
    fn fixed_point_digits_are_exact() {
        let t = V2Tables::get();
        // every five-digit tail, with several leading parts
        for r in 0..100_000u32 {
            for q in [1u32, 7, 42_949] {
                // the top tail of q = 42_949 passes u32::MAX: those values do not exist
                let Some(v) = q.checked_mul(100_000).and_then(|x| x.checked_add(r)) else {
                    continue;
                };
                assert_eq!(t.bucket(v), bucket_v2_from_state(v), "{v}");
            }
        }
        for v in (0..u32::MAX).step_by(9_973).chain([0, 99_999, 100_000, u32::MAX]) {
            assert_eq!(t.bucket(v), bucket_v2_from_state(v), "{v}");
        }
    }

    #[test]
    fn keyed_buckets_equal_one_by_one() {
        // shared prefixes of every length (beyond the kept prefix states too), repeats,
        // keys that are prefixes of their neighbours, empty keys
        let mut words: Vec<String> = (0..101).map(|i| "k".repeat(i % 23) + &format!("user-{i}")).collect();
        let long = "x".repeat(70);
        for i in 0..40 {
            words.push(format!("{long}{}", i % 7));
            words.push(format!("user-{:08}", i * 37));
            words.push(long[..i].to_string());
            words.push(String::new());
            words.push(format!("{}{}", &long[..65], "ab".repeat(i % 5)));
        }
        let seed_state = fnv1a_utf16(FNV_OFFSET, "seed");
        let keys: Vec<Key> = words
            .iter()
            .enumerate()
            .map(|(i, w)| if i % 9 == 4 { Key::State(fnv1a_utf16(seed_state, w)) } else { Key::Ascii(w.as_bytes()) })
            .collect();
        let mut out = vec![0.0; keys.len()];
        buckets_v2_keys(&V2Tables::get(), seed_state, &keys, &mut out);
        for (w, o) in words.iter().zip(&out) {
            assert_eq!(*o, bucket_v2("seed", w), "{w}");
        }
    }

    #[test]
    fn decimal_hash_matches_string_hash() {
        for v in [0u32, 7, 10, 99, 12345, u32::MAX] {
            assert_eq!(fnv1a_decimal(v), fnv1a_utf16(FNV_OFFSET, &v.to_string()));
        }
    }

    #[test]
    fn non_ascii_uses_utf16_units() {
        // U+1F600 is a surrogate pair in UTF-16: two code units.
        let units: Vec<u16> = "a😀".encode_utf16().collect();
        assert_eq!(units.len(), 3);
        assert_eq!(fnv1a_utf16(FNV_OFFSET, "a😀"), fnv1a_units(FNV_OFFSET, &units));
    }

    #[test]
    fn ranges_and_choice() {
        let r = bucket_ranges(3, 0.2, Some(&[0.2, 0.3, 0.5]));
        let want = [(0.0, 0.04), (0.2, 0.26), (0.5, 0.6)];
        for (a, b) in r.iter().zip(want) {
            assert!((a.0 - b.0).abs() < 1e-12 && (a.1 - b.1).abs() < 1e-12);
        }
        assert_eq!(choose_variation(0.1, &r), None);
        assert_eq!(choose_variation(0.25, &r), Some(1));
        let eq = bucket_ranges(2, 1.0, Some(&[0.7, 0.6]));
        assert_eq!(eq, vec![(0.0, 0.5), (0.5, 1.0)]);
    }
}
