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

/// v2 bucket from the FNV state after `seed + key`.
#[inline]
pub fn bucket_v2_from_state(state: u32) -> f64 {
    (fnv1a_decimal(state) % 10000) as f64 / 10000.0
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

    /// `bucket` of every state, eight at a time with AVX2 where the CPU has it.
    pub fn buckets(&self, states: &[u32], out: &mut [f64]) {
        let n = states.len().min(out.len());
        let mut done = 0;
        #[cfg(target_arch = "x86_64")]
        if std::arch::is_x86_feature_detected!("avx2") {
            // SAFETY: the CPU supports AVX2 (checked just above)
            done = unsafe { self.buckets_avx2(&states[..n], &mut out[..n]) };
        }
        for (o, &st) in out[done..n].iter_mut().zip(&states[done..n]) {
            *o = self.bucket(st);
        }
    }

    /// The whole groups of eight: the same integer digits and FNV steps as `bucket`, lane by
    /// lane (the quotients by 10^5 and 10^4 estimated by a multiplication and corrected
    /// exactly), and the same final IEEE division. Returns how many states were done; a lane
    /// below 100000 (no five-digit tail) is redone by `bucket`.
    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx2")]
    unsafe fn buckets_avx2(&self, states: &[u32], out: &mut [f64]) -> usize {
        use std::arch::x86_64::*;
        let groups = states.len() / 8;
        let sign = _mm256_set1_epi32(i32::MIN);
        let two31 = _mm256_set1_pd(2_147_483_648.0);
        // u32 lanes -> two f64x4, exactly
        let to_f64 = |v: __m256i| {
            let x = _mm256_xor_si256(v, sign);
            let lo = _mm256_add_pd(_mm256_cvtepi32_pd(_mm256_castsi256_si128(x)), two31);
            let hi = _mm256_add_pd(_mm256_cvtepi32_pd(_mm256_extracti128_si256(x, 1)), two31);
            (lo, hi)
        };
        // (floor(v / d), v mod d) for u32 lanes, as i32 lanes (quotients below 2^31): an
        // estimate from a multiplication by 1/d (off by at most one), then corrected exactly
        // with integer arithmetic; no division instruction (the divider is the slowest unit)
        let divmod = |v: __m256i, d: i32| {
            let (lo, hi) = to_f64(v);
            let inv = _mm256_set1_pd(1.0 / d as f64);
            let ql = _mm256_cvttpd_epi32(_mm256_floor_pd(_mm256_mul_pd(lo, inv)));
            let qh = _mm256_cvttpd_epi32(_mm256_floor_pd(_mm256_mul_pd(hi, inv)));
            let dv = _mm256_set1_epi32(d);
            let mut q = _mm256_set_m128i(qh, ql);
            let mut r = _mm256_sub_epi32(v, _mm256_mullo_epi32(q, dv));
            let over = _mm256_cmpgt_epi32(r, _mm256_set1_epi32(d - 1));
            q = _mm256_sub_epi32(q, over);
            r = _mm256_sub_epi32(r, _mm256_and_si256(over, dv));
            let under = _mm256_cmpgt_epi32(_mm256_setzero_si256(), r);
            q = _mm256_add_epi32(q, under);
            r = _mm256_add_epi32(r, _mm256_and_si256(under, dv));
            (q, r)
        };
        let prime = _mm256_set1_epi32(FNV_PRIME as i32);
        let zero_char = _mm256_set1_epi32(b'0' as i32);
        let step = |h: __m256i, digit: __m256i| {
            _mm256_mullo_epi32(_mm256_xor_si256(h, _mm256_add_epi32(digit, zero_char)), prime)
        };
        // x / d for x below a bound, as (x * m) >> 28 in 32-bit lanes (exact: checked offline
        // over every x; the tests compare with `bucket`)
        let div = |x: __m256i, m: i32| _mm256_srli_epi32(_mm256_mullo_epi32(x, _mm256_set1_epi32(m)), 28);
        let low_limit = _mm256_set1_epi32((100_000u32 ^ 0x8000_0000) as i32);
        let ten_k = _mm256_set1_pd(10_000.0);
        let high = self.high.as_ptr() as *const i32;
        for g in 0..groups {
            let s = _mm256_loadu_si256(states.as_ptr().add(8 * g) as *const __m256i);
            let (q, r) = divmod(s, 100_000);
            let mut h = _mm256_i32gather_epi32::<4>(high, q);
            // the five digits of r, zero-padded
            let d0 = div(_mm256_srli_epi32(r, 4), 429_497); // r / 10^4 = (r / 16) / 625
            let r1 = _mm256_sub_epi32(r, _mm256_mullo_epi32(d0, _mm256_set1_epi32(10_000)));
            let d1 = div(r1, 268_436);
            let r2 = _mm256_sub_epi32(r1, _mm256_mullo_epi32(d1, _mm256_set1_epi32(1_000)));
            let d2 = div(r2, 2_684_355);
            let r3 = _mm256_sub_epi32(r2, _mm256_mullo_epi32(d2, _mm256_set1_epi32(100)));
            let d3 = div(r3, 26_843_546);
            let d4 = _mm256_sub_epi32(r3, _mm256_mullo_epi32(d3, _mm256_set1_epi32(10)));
            for d in [d0, d1, d2, d3, d4] {
                h = step(h, d);
            }
            // (h % 10000) as f64 / 10000.0
            let (_, m) = divmod(h, 10_000);
            let lo = _mm256_div_pd(_mm256_cvtepi32_pd(_mm256_castsi256_si128(m)), ten_k);
            let hi = _mm256_div_pd(_mm256_cvtepi32_pd(_mm256_extracti128_si256(m, 1)), ten_k);
            let o = out.as_mut_ptr().add(8 * g);
            _mm256_storeu_pd(o, lo);
            _mm256_storeu_pd(o.add(4), hi);
            let low = _mm256_cmpgt_epi32(low_limit, _mm256_xor_si256(s, sign));
            if _mm256_movemask_epi8(low) != 0 {
                for j in 0..8 {
                    let st = states[8 * g + j];
                    if st < 100_000 {
                        out[8 * g + j] = self.bucket(st);
                    }
                }
            }
        }
        groups * 8
    }
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

/// Inner FNV states (`seed + key`) of ASCII keys, one after another, reusing the state after
/// the prefix a key shares with the previous one. Consecutive keys often share one
/// (`user-00012345`, `user-00012346`), so mostly only a short tail is hashed; the result is
/// the same fold.
pub struct PrefixHasher<'a> {
    states: [u32; PREFIX_STATES + 1],
    prev: &'a [u8],
}

impl<'a> PrefixHasher<'a> {
    pub fn new(seed_state: u32) -> Self {
        PrefixHasher { states: [seed_state; PREFIX_STATES + 1], prev: &[] }
    }

    #[inline(always)]
    pub fn state(&mut self, key: &'a [u8]) -> u32 {
        let start = common_prefix(self.prev, key).min(PREFIX_STATES);
        let mut h = self.states[start];
        for (i, &c) in key.iter().enumerate().skip(start) {
            h = (h ^ c as u32).wrapping_mul(FNV_PRIME);
            if i < PREFIX_STATES {
                self.states[i + 1] = h;
            }
        }
        self.prev = key;
        h
    }
}

/// Keys whose inner states are worked out before their buckets are (a block at a time).
pub const STATE_BLOCK: usize = 512;

/// v2 buckets of `out.len()` keys (each continuing `seed_state`) into `out`: `key(i)` gives
/// key i's ASCII text (its bytes are its UTF-16 code units), or None for a key the caller
/// buckets itself (its index is returned; its output slot is to be overwritten). The inner
/// states come first (`PrefixHasher`), a block at a time, then their buckets in one pass
/// (`V2Tables::buckets`, vectorised).
pub fn buckets_v2_ascii<'a>(
    tables: &V2Tables,
    seed_state: u32,
    out: &mut [f64],
    mut key: impl FnMut(usize) -> Option<&'a [u8]>,
) -> Vec<usize> {
    let mut hasher = PrefixHasher::new(seed_state);
    let mut block = [0u32; STATE_BLOCK];
    let mut left = Vec::new();
    for (c, ob) in out.chunks_mut(STATE_BLOCK).enumerate() {
        for (j, st) in block[..ob.len()].iter_mut().enumerate() {
            let i = c * STATE_BLOCK + j;
            *st = match key(i) {
                Some(b) => hasher.state(b),
                None => {
                    left.push(i);
                    0
                }
            };
        }
        tables.buckets(&block[..ob.len()], ob);
    }
    left
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
    fn vectorised_buckets_equal_one_by_one() {
        let t = V2Tables::get();
        // every five-digit tail under a few leading parts, values below 100000 (no tail),
        // the top of the range, and a spread over all of u32; lengths not a multiple of 8
        let mut states: Vec<u32> = (0..100_000u32).flat_map(|r| [r, 100_000 + r, 4_294_800_000 + r.min(67_295)]).collect();
        states.extend((0..u32::MAX).step_by(7_919));
        // both sides of every multiple of 10^5 (where an estimated quotient is off by one)
        states.extend((1..=42_949u32).flat_map(|k| [k * 100_000 - 1, k * 100_000, k * 100_000 + 1]));
        states.extend([u32::MAX, u32::MAX - 1, 99_999, 100_000, 0, 5]);
        let mut out = vec![0.0; states.len()];
        t.buckets(&states, &mut out);
        for (s, o) in states.iter().zip(&out) {
            assert_eq!(*o, bucket_v2_from_state(*s), "{s}");
        }
        let mut short = vec![0.0; 13];
        t.buckets(&states[..13], &mut short);
        assert_eq!(short, out[..13]);
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
        let mut out = vec![0.0; words.len()];
        // every ninth key is left to the caller, as a non-ASCII key would be
        let left = buckets_v2_ascii(&V2Tables::get(), seed_state, &mut out, |i| (i % 9 != 4).then(|| words[i].as_bytes()));
        assert_eq!(left, (0..words.len()).filter(|i| i % 9 == 4).collect::<Vec<_>>());
        for &i in &left {
            out[i] = bucket_v2_from_state(fnv1a_utf16(seed_state, &words[i]));
        }
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
