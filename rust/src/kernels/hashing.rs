//! GrowthBook-compatible variant hashing.
//!
//! FNV-1a 32-bit over UTF-16 code units (JavaScript's `charCodeAt`), so buckets agree with
//! GrowthBook SDKs in every language. v2: `fnv(str(fnv(seed + key))) % 10000 / 10000`;
//! v1: `fnv(key + seed) % 1000 / 1000`.
//!
//! Speed (issue 20: 1M keys from a Python list, one thread, >= 30x a Python loop over mmh3):
//! many keys are bucketed in two vectorised stages, with the same bits as the one-key path.
//! The inner hash `fnv(seed + key)` runs eight keys per step, one per 32-bit lane
//! (`buckets_v2_ascii`); the outer hash over the decimal digits of the inner one runs eight or
//! sixteen states per step in integer arithmetic (`V2Tables::buckets`). AVX2 and AVX-512 are
//! chosen at run time; other CPUs take the scalar path.

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

    /// `bucket` again for the states below 100000 (no five-digit tail: the vector path's
    /// result for them is wrong); rare, kept out of the vector loop.
    #[cfg(target_arch = "x86_64")]
    #[cold]
    #[inline(never)]
    fn redo_small(&self, states: &[u32], out: &mut [f64]) {
        for (o, &st) in out.iter_mut().zip(states) {
            if st < 100_000 {
                *o = self.bucket(st);
            }
        }
    }

    /// `bucket` of every state: sixteen at a time with AVX-512, eight with AVX2, where the CPU
    /// has them (same bits: `every_state_kernel_equals_one_by_one`).
    pub fn buckets(&self, states: &[u32], out: &mut [f64]) {
        let n = states.len().min(out.len());
        let mut done = 0;
        #[cfg(target_arch = "x86_64")]
        {
            use std::arch::is_x86_feature_detected as has;
            if has!("avx512f") && has!("fma") {
                // SAFETY: the CPU supports AVX-512F and FMA (checked just above)
                done = unsafe { self.buckets_avx512(&states[..n], &mut out[..n]) };
            }
            if n - done >= 8 && has!("avx2") && has!("fma") {
                // SAFETY: the CPU supports AVX2 and FMA (checked just above)
                done += unsafe { self.buckets_avx2(&states[done..n], &mut out[done..n]) };
            }
        }
        for (o, &st) in out[done..n].iter_mut().zip(&states[done..n]) {
            *o = self.bucket(st);
        }
    }

    /// `buckets_avx2` sixteen states at a time (AVX-512F): the same steps, twice the lanes.
    /// Returns how many states were done (whole groups of sixteen).
    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx512f,fma")]
    unsafe fn buckets_avx512(&self, states: &[u32], out: &mut [f64]) -> usize {
        use std::arch::x86_64::*;
        let groups = states.len() / 16;
        let prime = _mm512_set1_epi32(FNV_PRIME as i32);
        let zero_char = _mm512_set1_epi32(b'0' as i32);
        let low28 = _mm512_set1_epi32((1 << 28) - 1);
        let m_1e5 = _mm512_set1_epi32(DIV_1E5.0 as i32);
        let m_1e4 = _mm512_set1_epi32(DIV_1E4.0 as i32);
        let limit = _mm512_set1_epi32(100_000);
        let ten_k = _mm512_set1_pd(10_000.0);
        let inv_ten_k = _mm512_set1_pd(1.0 / 10_000.0);
        let high = self.high.as_ptr();
        // `div_magic` with sixteen lanes
        macro_rules! div_magic16 {
            ($x:expr, $m:expr, $pre:literal, $sh:literal) => {{
                let x = _mm512_srli_epi32::<$pre>($x);
                let even = _mm512_srli_epi64::<$sh>(_mm512_mul_epu32(x, $m));
                let odd = _mm512_srli_epi64::<$sh>(_mm512_mul_epu32(_mm512_srli_epi64::<32>(x), $m));
                _mm512_mask_blend_epi32(0xAAAA, even, _mm512_slli_epi64::<32>(odd))
            }};
        }
        macro_rules! step {
            ($h:expr, $d:expr) => {
                _mm512_mullo_epi32(_mm512_xor_si512($h, _mm512_add_epi32($d, zero_char)), prime)
            };
        }
        macro_rules! quotient {
            ($m:expr) => {{
                let x = _mm512_cvtepi32_pd($m);
                let q0 = _mm512_mul_pd(x, inv_ten_k);
                let rem = _mm512_fnmadd_pd(q0, ten_k, x);
                _mm512_fmadd_pd(rem, inv_ten_k, q0)
            }};
        }
        const _: () = assert!(DIV_1E5.1 == 5 && DIV_1E5.2 == 39 && DIV_1E4.1 == 4 && DIV_1E4.2 == 38);
        let out_ptr = out.as_mut_ptr();
        for g in 0..groups {
            let s = _mm512_loadu_si512(states.as_ptr().add(16 * g) as *const _);
            let q = div_magic16!(s, m_1e5, 5, 39);
            let r = _mm512_sub_epi32(s, _mm512_mullo_epi32(q, _mm512_set1_epi32(100_000)));
            let mut h = _mm512_i32gather_epi32::<4>(q, high as *const _);
            let d0 = _mm512_srli_epi32::<28>(_mm512_mullo_epi32(_mm512_srli_epi32::<4>(r), _mm512_set1_epi32(429_497)));
            h = step!(h, d0);
            let r1 = _mm512_sub_epi32(r, _mm512_mullo_epi32(d0, _mm512_set1_epi32(10_000)));
            let mut y = _mm512_mullo_epi32(r1, _mm512_set1_epi32(268_436));
            for k in 0..4 {
                if k > 0 {
                    let f = _mm512_and_si512(y, low28);
                    y = _mm512_add_epi32(_mm512_slli_epi32::<3>(f), _mm512_slli_epi32::<1>(f));
                }
                h = step!(h, _mm512_srli_epi32::<28>(y));
            }
            let q2 = div_magic16!(h, m_1e4, 4, 38);
            let m = _mm512_sub_epi32(h, _mm512_mullo_epi32(q2, _mm512_set1_epi32(10_000)));
            let o = out_ptr.add(16 * g);
            _mm512_storeu_pd(o, quotient!(_mm512_castsi512_si256(m)));
            _mm512_storeu_pd(o.add(8), quotient!(_mm512_extracti64x4_epi64::<1>(m)));
            if _mm512_cmplt_epu32_mask(s, limit) != 0 {
                self.redo_small(&states[16 * g..16 * g + 16], std::slice::from_raw_parts_mut(o, 16));
            }
        }
        groups * 16
    }

    /// The whole groups of eight: the same digits and FNV steps as `bucket`, lane by lane, in
    /// integer arithmetic only (no division instruction: the divider is the slowest unit), and
    /// the same final IEEE quotient. Returns how many states were done; a lane below 100000
    /// (no five-digit tail) is redone by `bucket`.
    ///
    /// Per group: the quotient by 10^5 from a 32x32->64 multiplication by a magic reciprocal
    /// (`div_magic`), the leading digits' FNV state gathered from the table, the tail's first
    /// digit by a 32-bit reciprocal and the other four peeled off a 4.28 fixed-point fraction
    /// (times ten is two shifts and an add), five FNV steps, `% 10000` again by a magic
    /// reciprocal, and `m / 10000.0` as a product corrected by two FMAs (the correctly rounded
    /// quotient for every m < 10000: `fma_quotient_is_the_division`).
    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx2,fma")]
    unsafe fn buckets_avx2(&self, states: &[u32], out: &mut [f64]) -> usize {
        use std::arch::x86_64::*;
        let groups = states.len() / 8;
        let sign = _mm256_set1_epi32(i32::MIN);
        let prime = _mm256_set1_epi32(FNV_PRIME as i32);
        let zero_char = _mm256_set1_epi32(b'0' as i32);
        let low28 = _mm256_set1_epi32((1 << 28) - 1);
        let m_1e5 = _mm256_set1_epi32(DIV_1E5.0 as i32);
        let m_1e4 = _mm256_set1_epi32(DIV_1E4.0 as i32);
        let low_limit = _mm256_set1_epi32((100_000u32 ^ 0x8000_0000) as i32);
        let ten_k = _mm256_set1_pd(10_000.0);
        let inv_ten_k = _mm256_set1_pd(1.0 / 10_000.0);
        let high = self.high.as_ptr() as *const i32;
        // (closures in a `#[target_feature]` function are not inlined: macros instead)
        macro_rules! quotient {
            ($m:expr) => {{
                let x = _mm256_cvtepi32_pd($m);
                let q0 = _mm256_mul_pd(x, inv_ten_k);
                let rem = _mm256_fnmadd_pd(q0, ten_k, x);
                _mm256_fmadd_pd(rem, inv_ten_k, q0)
            }};
        }
        let out_ptr = out.as_mut_ptr();
        for g in 0..groups {
            let s = _mm256_loadu_si256(states.as_ptr().add(8 * g) as *const __m256i);
            let q = div_magic::<{ DIV_1E5.1 }, { DIV_1E5.2 }>(s, m_1e5);
            let r = _mm256_sub_epi32(s, _mm256_mullo_epi32(q, _mm256_set1_epi32(100_000)));
            let mut h = _mm256_i32gather_epi32::<4>(high, q);
            // the five digits of r, zero-padded: r / 10^4 = (r / 16) * 429497 >> 28 (exact for
            // r < 10^5), then r mod 10^4 as a fraction of 10^3 in 4.28 fixed point, rounded up
            let d0 = _mm256_srli_epi32::<28>(_mm256_mullo_epi32(_mm256_srli_epi32::<4>(r), _mm256_set1_epi32(429_497)));
            h = _mm256_mullo_epi32(_mm256_xor_si256(h, _mm256_add_epi32(d0, zero_char)), prime);
            let r1 = _mm256_sub_epi32(r, _mm256_mullo_epi32(d0, _mm256_set1_epi32(10_000)));
            let mut y = _mm256_mullo_epi32(r1, _mm256_set1_epi32(268_436));
            for k in 0..4 {
                if k > 0 {
                    let f = _mm256_and_si256(y, low28);
                    y = _mm256_add_epi32(_mm256_slli_epi32::<3>(f), _mm256_slli_epi32::<1>(f));
                }
                let d = _mm256_srli_epi32::<28>(y);
                h = _mm256_mullo_epi32(_mm256_xor_si256(h, _mm256_add_epi32(d, zero_char)), prime);
            }
            // (h % 10000) as f64 / 10000.0
            let q2 = div_magic::<{ DIV_1E4.1 }, { DIV_1E4.2 }>(h, m_1e4);
            let m = _mm256_sub_epi32(h, _mm256_mullo_epi32(q2, _mm256_set1_epi32(10_000)));
            let o = out_ptr.add(8 * g);
            _mm256_storeu_pd(o, quotient!(_mm256_castsi256_si128(m)));
            _mm256_storeu_pd(o.add(4), quotient!(_mm256_extracti128_si256::<1>(m)));
            if _mm256_movemask_epi8(_mm256_cmpgt_epi32(low_limit, _mm256_xor_si256(s, sign))) != 0 {
                self.redo_small(&states[8 * g..8 * g + 8], std::slice::from_raw_parts_mut(o, 8));
            }
        }
        groups * 8
    }
}

/// `floor(x / 10^5)` for every u32 x as `((x >> 5) * M) >> 39`: (M, 5, 39), M = ceil(2^39 / 3125).
/// Exact: M * 3125 - 2^39 = 1737 < 3125 and x >> 5 < 2^27, so the error stays below one unit
/// (`magic_divisions_are_exact` checks the edges and a spread).
#[cfg_attr(not(target_arch = "x86_64"), allow(dead_code))]
const DIV_1E5: (u32, i32, i32) = (175_921_861, 5, 39);
/// `floor(x / 10^4)`: ((x >> 4) * M) >> 38, M = ceil(2^38 / 625) (M * 625 - 2^38 = 556 < 625).
#[cfg_attr(not(target_arch = "x86_64"), allow(dead_code))]
const DIV_1E4: (u32, i32, i32) = (439_804_652, 4, 38);

/// `((x >> PRE) * m) >> SH` per u32 lane, the products 64 bits wide (`vpmuludq`, even and odd
/// lanes separately): the quotient by a constant when (m, PRE, SH) is one of `DIV_1E5`, `DIV_1E4`.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
#[inline]
unsafe fn div_magic<const PRE: i32, const SH: i32>(x: std::arch::x86_64::__m256i, m: std::arch::x86_64::__m256i) -> std::arch::x86_64::__m256i {
    use std::arch::x86_64::*;
    let x = _mm256_srli_epi32::<PRE>(x);
    let even = _mm256_srli_epi64::<SH>(_mm256_mul_epu32(x, m));
    let odd = _mm256_srli_epi64::<SH>(_mm256_mul_epu32(_mm256_srli_epi64::<32>(x), m));
    _mm256_blend_epi32::<0b1010_1010>(even, _mm256_slli_epi64::<32>(odd))
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
        let kept = key.len().min(PREFIX_STATES);
        // SAFETY: start <= PREFIX_STATES, i + 1 <= kept <= PREFIX_STATES, i < key.len()
        unsafe {
            let mut h = *self.states.get_unchecked(start);
            for i in start..kept {
                h = (h ^ *key.get_unchecked(i) as u32).wrapping_mul(FNV_PRIME);
                *self.states.get_unchecked_mut(i + 1) = h;
            }
            for i in kept.max(start)..key.len() {
                h = (h ^ *key.get_unchecked(i) as u32).wrapping_mul(FNV_PRIME);
            }
            self.prev = key;
            h
        }
    }
}

/// Keys whose inner states are worked out before their buckets are (a block at a time). Small,
/// so that the passes that only compute alternate quickly with the one that reads keys (and
/// prefetches the next block's): memory stays busy (64 measured 3-8% faster than 512 on 1M
/// keys).
pub const STATE_BLOCK: usize = 64;

/// How many keys ahead `buckets_v2_ascii` asks for a key's memory to be prefetched.
pub const PREFETCH_AHEAD: usize = 64;

/// v2 buckets of `out.len()` keys (each continuing `seed_state`) into `out`: `key(i)` gives
/// key i's ASCII text (its bytes are its UTF-16 code units), or None for a key the caller
/// buckets itself (its index is returned, ascending; its output slot is to be overwritten);
/// `prefetch(i)` may start loading key i's memory (i < `out.len()`), or do nothing.
///
/// The inner states come first, a block at a time, then their buckets in one pass
/// (`V2Tables::buckets`, vectorised). With AVX2 the inner states are hashed eight keys at a
/// time, one key per 32-bit lane (`buckets_v2_ascii_avx2`; AVX-512 where the CPU has it): FNV-1a
/// is a serial chain of multiplications within a key, but eight keys' chains are independent.
/// Keys in a Python list are separate objects, so their memory is prefetched `PREFETCH_AHEAD`
/// keys ahead. Without AVX2, one key after another (`buckets_v2_ascii_scalar`). The results
/// are the same bits on every path (`vector_key_hashing_equals_one_by_one`).
pub fn buckets_v2_ascii<'a>(
    tables: &V2Tables,
    seed_state: u32,
    out: &mut [f64],
    key: impl Fn(usize) -> Option<&'a [u8]>,
    prefetch: impl Fn(usize),
) -> Vec<usize> {
    #[cfg(target_arch = "x86_64")]
    {
        use std::arch::is_x86_feature_detected as has;
        if has!("avx2") && has!("avx512f") && has!("avx512bw") && has!("avx512vl") && has!("fma") && has!("bmi2") {
            // SAFETY: the CPU supports these (checked just above)
            return unsafe { buckets_v2_ascii_avx512_16(tables, seed_state, out, key, prefetch) };
        }
        if has!("avx2") && has!("avx512f") && has!("avx512bw") && has!("avx512vl") {
            // SAFETY: as above
            return unsafe { buckets_v2_ascii_avx512(tables, seed_state, out, key, prefetch) };
        }
        if has!("avx2") {
            // SAFETY: as above
            return unsafe { buckets_v2_ascii_avx2(tables, seed_state, out, key, prefetch) };
        }
    }
    buckets_v2_ascii_scalar(tables, seed_state, out, key)
}

/// `buckets_v2_ascii` one key after another, reusing the state after the prefix each key
/// shares with the previous one (`PrefixHasher`).
pub fn buckets_v2_ascii_scalar<'a>(
    tables: &V2Tables,
    seed_state: u32,
    out: &mut [f64],
    key: impl Fn(usize) -> Option<&'a [u8]>,
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

/// `lengths8` of eight lengths of at most 16 (as lanes, then reduced in the vector unit).
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
#[inline]
unsafe fn short_lengths8(lens: &[u32; 8]) -> (usize, usize, std::arch::x86_64::__m256i) {
    use std::arch::x86_64::*;
    let v = _mm256_loadu_si256(lens.as_ptr() as *const __m256i);
    let halves = _mm256_permute2x128_si256::<0x01>(v, v);
    let (mut mx, mut mn) = (_mm256_max_epu32(v, halves), _mm256_min_epu32(v, halves));
    mx = _mm256_max_epu32(mx, _mm256_shuffle_epi32::<0x4E>(mx));
    mn = _mm256_min_epu32(mn, _mm256_shuffle_epi32::<0x4E>(mn));
    mx = _mm256_max_epu32(mx, _mm256_shuffle_epi32::<0xB1>(mx));
    mn = _mm256_min_epu32(mn, _mm256_shuffle_epi32::<0xB1>(mn));
    (_mm256_cvtsi256_si32(mn) as usize, _mm256_cvtsi256_si32(mx) as usize, v)
}

/// Bytes `16 ch .. 16 ch + 16` of eight keys transposed: `d[t]` lane k holds bytes
/// `4 t .. 4 t + 4` of `keys[k]` (4x4 transposes of 32-bit words in each 128-bit half). A
/// macro, not a function: `#[target_feature]` functions cannot be forced inline, and a call
/// returning four vectors goes through memory.
#[cfg(target_arch = "x86_64")]
macro_rules! columns8 {
    ($chunk16:ident, $keys:expr, $ch:expr) => {{
        let (keys, ch) = ($keys, $ch);
        let x: [__m128i; 8] = [
            $chunk16(keys[0], ch), $chunk16(keys[1], ch), $chunk16(keys[2], ch), $chunk16(keys[3], ch),
            $chunk16(keys[4], ch), $chunk16(keys[5], ch), $chunk16(keys[6], ch), $chunk16(keys[7], ch),
        ];
        transpose8!(x)
    }};
}

/// Eight keys' sixteen bytes `x[k]` transposed: `d[t]` lane k holds bytes `4 t .. 4 t + 4` of
/// `x[k]` (4x4 transposes of 32-bit words in each 128-bit half).
#[cfg(target_arch = "x86_64")]
macro_rules! transpose8 {
    ($x:expr) => {{
        let x: [__m128i; 8] = $x;
        let r0 = _mm256_set_m128i(x[4], x[0]);
        let r1 = _mm256_set_m128i(x[5], x[1]);
        let r2 = _mm256_set_m128i(x[6], x[2]);
        let r3 = _mm256_set_m128i(x[7], x[3]);
        let t0 = _mm256_unpacklo_epi32(r0, r1);
        let t1 = _mm256_unpacklo_epi32(r2, r3);
        let t2 = _mm256_unpackhi_epi32(r0, r1);
        let t3 = _mm256_unpackhi_epi32(r2, r3);
        [
            _mm256_unpacklo_epi64(t0, t1),
            _mm256_unpackhi_epi64(t0, t1),
            _mm256_unpacklo_epi64(t2, t3),
            _mm256_unpackhi_epi64(t2, t3),
        ]
    }};
}

/// `fnv_columns` of two groups of keys, all of one length `todo` (<= 16), from byte `from`
/// and the states `ha`, `hb` there, side by side (a macro so that it is inlined: the two
/// chains are the point).
#[cfg(target_arch = "x86_64")]
macro_rules! fnv_columns2 {
    ($ha:expr, $hb:expr, $da:expr, $db:expr, $from:expr, $todo:expr) => {{
        let (da, db, from, todo): (&[__m256i; 4], &[__m256i; 4], usize, usize) = ($da, $db, $from, $todo);
        let prime = _mm256_set1_epi32(FNV_PRIME as i32);
        let low_byte = _mm256_set1_epi32(0xFF);
        let sel1 = _mm256_setr_epi32(SEL[1][0], SEL[1][1], SEL[1][2], SEL[1][3], SEL[1][0], SEL[1][1], SEL[1][2], SEL[1][3]);
        let sel2 = _mm256_setr_epi32(SEL[2][0], SEL[2][1], SEL[2][2], SEL[2][3], SEL[2][0], SEL[2][1], SEL[2][2], SEL[2][3]);
        let (mut ha, mut hb): (__m256i, __m256i) = ($ha, $hb);
        'bytes: for t in 0..4 {
            for b in 0..4 {
                if 4 * t + b >= todo {
                    break 'bytes;
                }
                if 4 * t + b < from {
                    continue;
                }
                let (wa, wb) = (da[t], db[t]);
                let (ba, bb) = match b {
                    0 => (_mm256_and_si256(wa, low_byte), _mm256_and_si256(wb, low_byte)),
                    1 => (_mm256_shuffle_epi8(wa, sel1), _mm256_shuffle_epi8(wb, sel1)),
                    2 => (_mm256_shuffle_epi8(wa, sel2), _mm256_shuffle_epi8(wb, sel2)),
                    _ => (_mm256_srli_epi32::<24>(wa), _mm256_srli_epi32::<24>(wb)),
                };
                ha = _mm256_mullo_epi32(_mm256_xor_si256(ha, ba), prime);
                hb = _mm256_mullo_epi32(_mm256_xor_si256(hb, bb), prime);
            }
        }
        (ha, hb)
    }};
}

/// `fnv_columns2!` with both groups in one 512-bit register (AVX-512BW): half the
/// multiplications.
#[cfg(target_arch = "x86_64")]
macro_rules! fnv_columns2_512 {
    ($ha:expr, $hb:expr, $da:expr, $db:expr, $from:expr, $todo:expr) => {{
        let (da, db, from, todo): (&[__m256i; 4], &[__m256i; 4], usize, usize) = ($da, $db, $from, $todo);
        let prime = _mm512_set1_epi32(FNV_PRIME as i32);
        let low_byte = _mm512_set1_epi32(0xFF);
        let sel1 = _mm512_broadcast_i32x4(_mm_setr_epi32(SEL[1][0], SEL[1][1], SEL[1][2], SEL[1][3]));
        let sel2 = _mm512_broadcast_i32x4(_mm_setr_epi32(SEL[2][0], SEL[2][1], SEL[2][2], SEL[2][3]));
        let mut h = _mm512_inserti64x4::<1>(_mm512_castsi256_si512($ha), $hb);
        'bytes: for t in 0..4 {
            let w = _mm512_inserti64x4::<1>(_mm512_castsi256_si512(da[t]), db[t]);
            for b in 0..4 {
                if 4 * t + b >= todo {
                    break 'bytes;
                }
                if 4 * t + b < from {
                    continue;
                }
                let byte = match b {
                    0 => _mm512_and_si512(w, low_byte),
                    1 => _mm512_shuffle_epi8(w, sel1),
                    2 => _mm512_shuffle_epi8(w, sel2),
                    _ => _mm512_srli_epi32::<24>(w),
                };
                h = _mm512_mullo_epi32(_mm512_xor_si512(h, byte), prime);
            }
        }
        (_mm512_castsi512_si256(h), _mm512_extracti64x4_epi64::<1>(h))
    }};
}

/// Longest key (bytes) whose transposed columns `buckets_v2_ascii_avx2` keeps for its second
/// phase; a group with a longer key is hashed in the first.
#[cfg(target_arch = "x86_64")]
const KEPT_CHUNKS: usize = 4;

/// How a group of eight keys is finished in `buckets_v2_ascii_avx2`'s second phase.
#[cfg(target_arch = "x86_64")]
#[derive(Clone, Copy)]
enum Group {
    /// states already in the block
    Done,
    /// hash the kept columns: the longest key's length, whether all lengths are equal, the
    /// lengths as lanes, and the bytes all eight keys start with and the FNV state after them
    /// (hashed once, not in every lane)
    Columns(usize, bool, std::arch::x86_64::__m256i, usize, u32),
}

/// `buckets_v2_ascii` with AVX2, a block of keys at a time, in three passes: (1) each group of
/// eight keys is read and transposed (`transpose8!`: one key per 32-bit lane; a key of at most
/// sixteen bytes with one read, `$short16`, longer ones sixteen bytes at a time); (2) every
/// group's FNV-1a chain runs over its columns: a chain is one multiplication per byte and each
/// waits on the last (10 cycles on Intel cores), so the loop holds nothing else and runs two
/// groups of equal-length keys side by side (`$pair`), letting the processor overlap many
/// chains; (3) the buckets of the block's states (`V2Tables::buckets`). A group holding a key
/// the caller does (None) is hashed key by key; one with a key longer than `KEPT_CHUNKS` x 16
/// bytes is hashed in the first pass. Expanded twice: AVX2, and AVX-512 (masked key reads,
/// both groups of a pair in one register).
#[cfg(target_arch = "x86_64")]
macro_rules! ascii_kernel {
    ($(#[$attr:meta])* $name:ident, $chunk16:ident, $short16:ident, $pair:ident) => {
$(#[$attr])*
unsafe fn $name<'a>(
    tables: &V2Tables,
    seed_state: u32,
    out: &mut [f64],
    key: impl Fn(usize) -> Option<&'a [u8]>,
    prefetch: impl Fn(usize),
) -> Vec<usize> {
    use std::arch::x86_64::*;
    const GROUPS: usize = STATE_BLOCK / 8;
    let n = out.len();
    let seed = _mm256_set1_epi32(seed_state as i32);
    let mut block = [0u32; STATE_BLOCK];
    let mut cols = vec![_mm256_setzero_si256(); n.min(STATE_BLOCK) / 8 * 4 * KEPT_CHUNKS];
    let mut groups = [Group::Done; GROUPS];
    let mut prefix = PrefixHasher::new(seed_state);
    let mut left = Vec::new();
    for i in 0..n.min(PREFETCH_AHEAD) {
        prefetch(i);
    }
    for (c, ob) in out.chunks_mut(STATE_BLOCK).enumerate() {
        let base = c * STATE_BLOCK;
        let m = ob.len();
        let whole = m / 8;
        for g in 0..whole {
            let i = base + 8 * g;
            for k in i + PREFETCH_AHEAD..(i + PREFETCH_AHEAD + 8).min(n) {
                prefetch(k);
            }
            let mut keys: [&'a [u8]; 8] = [&[]; 8];
            let mut all = true;
            // the usual case first: every key there and at most sixteen bytes long, read as
            // it is found
            let mut x = [_mm_setzero_si128(); 8];
            let mut lens = [0u32; 8];
            let mut short = true;
            for k in 0..8 {
                match key(i + k) {
                    Some(b) => {
                        keys[k] = b;
                        if b.len() <= 16 {
                            x[k] = $short16(b);
                            lens[k] = b.len() as u32;
                        } else {
                            short = false;
                        }
                    }
                    None => all = false,
                }
            }
            if all && short {
                let (minlen, maxlen, lenv) = short_lengths8(&lens);
                // the bytes all eight share (neighbouring keys mostly differ in their last
                // few): hashed once, from the previous group's prefix states
                let mut equal = 0xFFFFu32;
                for k in 1..8 {
                    equal &= _mm_movemask_epi8(_mm_cmpeq_epi8(x[k], x[0])) as u32;
                }
                let shared = ((!equal).trailing_zeros() as usize).min(minlen);
                let h0 = prefix.state(&keys[0][..shared]);
                let d = transpose8!(x);
                let at = g * KEPT_CHUNKS * 4;
                cols[at..at + 4].copy_from_slice(&d);
                groups[g] = Group::Columns(maxlen, minlen == maxlen, lenv, shared, h0);
                continue;
            }
            groups[g] = Group::Done;
            if !all {
                for k in 0..8 {
                    block[8 * g + k] = match key(i + k) {
                        Some(b) => fnv1a_bytes(seed_state, b),
                        None => {
                            left.push(i + k);
                            0
                        }
                    };
                }
                continue;
            }
            let (minlen, maxlen, lenv) = lengths8(&keys);
            let same = minlen == maxlen;
            let chunks = maxlen.div_ceil(16);
            if chunks <= KEPT_CHUNKS {
                for ch in 0..chunks {
                    let d = columns8!($chunk16, &keys, ch);
                    let at = (g * KEPT_CHUNKS + ch) * 4;
                    cols[at..at + 4].copy_from_slice(&d);
                }
                groups[g] = Group::Columns(maxlen, same, lenv, 0, seed_state);
            } else {
                let mut h = seed;
                for ch in 0..chunks {
                    h = fnv_columns(h, &columns8!($chunk16, &keys, ch), (maxlen - 16 * ch).min(16), same, lenv, 16 * ch, 0);
                }
                _mm256_storeu_si256(block.as_mut_ptr().add(8 * g) as *mut __m256i, h);
            }
        }
        let mut g = 0;
        while g < whole {
            // two groups of equal-length keys at once (the usual case): two independent chains
            if let (Group::Columns(la, true, _, fa, ha), Some(&Group::Columns(lb, true, _, fb, hb))) =
                (groups[g], groups[..whole].get(g + 1))
            {
                if la == lb && la <= 16 && fa == fb {
                    let (a, b) = ((g * KEPT_CHUNKS) * 4, ((g + 1) * KEPT_CHUNKS) * 4);
                    let (ha, hb) = $pair!(
                        _mm256_set1_epi32(ha as i32),
                        _mm256_set1_epi32(hb as i32),
                        &[cols[a], cols[a + 1], cols[a + 2], cols[a + 3]],
                        &[cols[b], cols[b + 1], cols[b + 2], cols[b + 3]],
                        fa,
                        la
                    );
                    _mm256_storeu_si256(block.as_mut_ptr().add(8 * g) as *mut __m256i, ha);
                    _mm256_storeu_si256(block.as_mut_ptr().add(8 * g + 8) as *mut __m256i, hb);
                    g += 2;
                    continue;
                }
            }
            if let Group::Columns(maxlen, same, lenv, from, h0) = groups[g] {
                // (`from` is within the first chunk: a shared prefix is found for short keys only)
                let mut h = _mm256_set1_epi32(h0 as i32);
                for ch in 0..maxlen.div_ceil(16) {
                    let at = (g * KEPT_CHUNKS + ch) * 4;
                    let d = [cols[at], cols[at + 1], cols[at + 2], cols[at + 3]];
                    h = fnv_columns(h, &d, (maxlen - 16 * ch).min(16), same, lenv, 16 * ch, if ch == 0 { from } else { 0 });
                }
                _mm256_storeu_si256(block.as_mut_ptr().add(8 * g) as *mut __m256i, h);
            }
            g += 1;
        }
        for k in 8 * whole..m {
            block[k] = match key(base + k) {
                Some(b) => fnv1a_bytes(seed_state, b),
                None => {
                    left.push(base + k);
                    0
                }
            };
        }
        tables.buckets(&block[..m], ob);
    }
    left
}
    };
}

#[cfg(target_arch = "x86_64")]
ascii_kernel!(
    #[target_feature(enable = "avx2")]
    buckets_v2_ascii_avx2,
    chunk16,
    short16,
    fnv_columns2
);

#[cfg(target_arch = "x86_64")]
ascii_kernel!(
    /// `buckets_v2_ascii_avx2` reading each key's sixteen bytes with one masked load (AVX-512BW:
    /// masked-off bytes are not read) instead of overlapping scalar reads.
    #[target_feature(enable = "avx2,avx512f,avx512bw,avx512vl")]
    buckets_v2_ascii_avx512,
    chunk16_masked,
    short16_masked,
    fnv_columns2_512
);

/// `buckets_v2_ascii` for blocks of `STATE_BLOCK` keys of at most sixteen bytes each, sixteen
/// keys per AVX-512 register; any other block is handed to `buckets_v2_ascii_avx512` (same
/// bits either way).
///
/// Why: with sixteen 32-bit lanes an FNV-1a step costs one multiplication for sixteen keys,
/// so hashing every byte of every key (masked per lane past its length) is cheaper than the
/// bookkeeping that finds and reuses the prefix a group of keys shares, and it has no serial
/// chain from one group's key reads to the next group's hashing: on an AMD EPYC (Zen 4) host,
/// 1M keys `user-%08d` in cache took 5.1 ns per key with that kernel and ~3.4 with this one.
/// Per group of sixteen: each key's length and its sixteen bytes (one masked load, nothing
/// past its end is read), the bytes transposed so that lane k holds key k (4x4 transposes of
/// 32-bit words in each 128-bit lane), then one masked multiply per byte position.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,avx512f,avx512bw,avx512vl,fma,bmi2")]
unsafe fn buckets_v2_ascii_avx512_16<'a>(
    tables: &V2Tables,
    seed_state: u32,
    out: &mut [f64],
    key: impl Fn(usize) -> Option<&'a [u8]>,
    prefetch: impl Fn(usize),
) -> Vec<usize> {
    use std::arch::x86_64::*;
    let n = out.len();
    let seed = _mm512_set1_epi32(seed_state as i32);
    let prime = _mm512_set1_epi32(FNV_PRIME as i32);
    let low_byte = _mm512_set1_epi32(0xFF);
    let sel1 = _mm512_broadcast_i32x4(_mm_setr_epi32(SEL[1][0], SEL[1][1], SEL[1][2], SEL[1][3]));
    let sel2 = _mm512_broadcast_i32x4(_mm_setr_epi32(SEL[2][0], SEL[2][1], SEL[2][2], SEL[2][3]));
    let mut block = [0u32; STATE_BLOCK];
    let mut staged = [0.0f64; STATE_BLOCK];
    // a large output goes straight to memory (`stream_store`); a small one stays in cache for
    // the caller
    let stream = n >= STREAM_MIN;
    let mut left = Vec::new();
    for i in 0..n.min(PREFETCH_AHEAD) {
        prefetch(i);
    }
    for (c, ob) in out.chunks_mut(STATE_BLOCK).enumerate() {
        let base = c * STATE_BLOCK;
        let mut fast = ob.len() == STATE_BLOCK;
        let mut q = 0;
        while fast && q < STATE_BLOCK / 16 {
            let i = base + 16 * q;
            if i + PREFETCH_AHEAD + 16 <= n {
                for k in 0..16 {
                    prefetch(i + PREFETCH_AHEAD + k);
                }
            } else {
                for k in i + PREFETCH_AHEAD..n {
                    prefetch(k);
                }
            }
            // key k goes to 128-bit lane k / 4 of z[k % 4] as it is read, and its length to
            // byte k of `lens`: all in registers (storing sixteen reads and loading them back as
            // wider vectors stalls on store forwarding)
            let mut z = [_mm512_setzero_si512(); 4];
            let (mut lens_lo, mut lens_hi, mut maxlen) = (0u64, 0u64, 0usize);
            macro_rules! read {
                ($k:literal) => {
                    match key(i + $k) {
                        Some(b) if b.len() <= 16 => {
                            // (the bytes past the key's end are neither read nor set)
                            let v = _mm_maskz_loadu_epi8(_bzhi_u32(0xFFFF, b.len() as u32) as __mmask16, b.as_ptr() as *const i8);
                            z[$k % 4] = _mm512_inserti32x4::<{ $k / 4 }>(z[$k % 4], v);
                            if $k < 8 {
                                lens_lo |= (b.len() as u64) << (8 * ($k % 8));
                            } else {
                                lens_hi |= (b.len() as u64) << (8 * ($k % 8));
                            }
                            maxlen = maxlen.max(b.len());
                        }
                        _ => fast = false,
                    }
                };
            }
            read!(0); read!(1); read!(2); read!(3); read!(4); read!(5); read!(6); read!(7);
            read!(8); read!(9); read!(10); read!(11); read!(12); read!(13); read!(14); read!(15);
            if !fast {
                break;
            }
            let lenv = _mm512_cvtepu8_epi32(_mm_set_epi64x(lens_hi as i64, lens_lo as i64));
            // z[j]: keys j, j + 4, j + 8, j + 12 in its four 128-bit lanes; after the 4x4
            // transposes d[t] 32-bit lane 4 L + j holds bytes 4 t .. 4 t + 4 of key 4 L + j
            let [z0, z1, z2, z3] = z;
            let t0 = _mm512_unpacklo_epi32(z0, z1);
            let t1 = _mm512_unpacklo_epi32(z2, z3);
            let t2 = _mm512_unpackhi_epi32(z0, z1);
            let t3 = _mm512_unpackhi_epi32(z2, z3);
            let d = [
                _mm512_unpacklo_epi64(t0, t1),
                _mm512_unpackhi_epi64(t0, t1),
                _mm512_unpacklo_epi64(t2, t3),
                _mm512_unpackhi_epi64(t2, t3),
            ];
            let mut h = seed;
            'bytes: for (t, &w) in d.iter().enumerate() {
                for b in 0..4 {
                    let j = 4 * t + b;
                    if j >= maxlen {
                        break 'bytes;
                    }
                    let byte = match b {
                        0 => _mm512_and_si512(w, low_byte),
                        1 => _mm512_shuffle_epi8(w, sel1),
                        2 => _mm512_shuffle_epi8(w, sel2),
                        _ => _mm512_srli_epi32::<24>(w),
                    };
                    // the lanes whose key has a byte j
                    let live = _mm512_cmpgt_epu32_mask(lenv, _mm512_set1_epi32(j as i32));
                    h = _mm512_mask_mullo_epi32(h, live, _mm512_xor_si512(h, byte), prime);
                }
            }
            _mm512_storeu_si512(block.as_mut_ptr().add(16 * q) as *mut _, h);
            q += 1;
        }
        if fast && stream {
            tables.buckets(&block, &mut staged);
            stream_store(ob, &staged);
        } else if fast {
            tables.buckets(&block, ob);
        } else {
            // a key that is missing, non-ASCII or longer than sixteen bytes: this block the
            // general way
            let rest = buckets_v2_ascii_avx512(tables, seed_state, ob, |j| key(base + j), |j| {
                if base + j + PREFETCH_AHEAD < n {
                    prefetch(base + j + PREFETCH_AHEAD)
                }
            });
            left.extend(rest.into_iter().map(|j| base + j));
        }
    }
    _mm_sfence();
    left
}

/// Outputs of at least this many keys (4 MB; their key objects alone are 32 MB or more, so
/// the output would not stay in cache anyway) are written with non-temporal stores (1M keys
/// `user-%08d` on an AMD EPYC host, one thread: 5.40 -> 5.00 ns per key, same run).
#[cfg(target_arch = "x86_64")]
const STREAM_MIN: usize = 1 << 19;

/// `dst.copy_from_slice(src)` with non-temporal stores for the whole 64-byte lines of `dst`
/// (the output is written once and not read back here: no read for ownership of its lines);
/// ordinary stores for a partial line at either end. The caller issues `_mm_sfence` after
/// its last call.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
#[inline]
unsafe fn stream_store(dst: &mut [f64], src: &[f64]) {
    use std::arch::x86_64::*;
    let n = dst.len().min(src.len());
    let head = ((dst.as_ptr() as usize).wrapping_neg() % 64 / 8).min(n);
    dst[..head].copy_from_slice(&src[..head]);
    let mut i = head;
    while i + 8 <= n {
        _mm512_stream_pd(dst.as_mut_ptr().add(i), _mm512_loadu_pd(src.as_ptr().add(i)));
        i += 8;
    }
    dst[i..n].copy_from_slice(&src[i..n]);
}

/// FNV-1a continued from `h` over bytes.
#[cfg(target_arch = "x86_64")]
#[inline(always)]
fn fnv1a_bytes(mut h: u32, b: &[u8]) -> u32 {
    for &c in b {
        h = (h ^ c as u32).wrapping_mul(FNV_PRIME);
    }
    h
}

/// `chunk16` with one masked load: the bytes past the key's end are neither read nor set.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,avx512f,avx512bw,avx512vl")]
#[inline]
unsafe fn chunk16_masked(key: &[u8], c: usize) -> std::arch::x86_64::__m128i {
    use std::arch::x86_64::*;
    let rest = key.len().saturating_sub(16 * c).min(16);
    let p = key.as_ptr().add((16 * c).min(key.len()));
    _mm_maskz_loadu_epi8(((1u32 << rest) - 1) as __mmask16, p as *const i8)
}

/// `chunk16(key, 0)` for a key of at most sixteen bytes.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
#[inline]
unsafe fn short16(key: &[u8]) -> std::arch::x86_64::__m128i {
    chunk16(key, 0)
}

/// `chunk16_masked(key, 0)` for a key of at most sixteen bytes.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,avx512f,avx512bw,avx512vl")]
#[inline]
unsafe fn short16_masked(key: &[u8]) -> std::arch::x86_64::__m128i {
    use std::arch::x86_64::*;
    _mm_maskz_loadu_epi8(((1u32 << key.len()) - 1) as __mmask16, key.as_ptr() as *const i8)
}

/// `vpshufb` controls moving byte b of each 32-bit lane to its bottom, zeroing the rest (it
/// indexes bytes within each 128-bit half; 0x80 gives zero).
#[cfg(target_arch = "x86_64")]
const SEL: [[i32; 4]; 3] = {
    let mut t = [[0i32; 4]; 3];
    let mut b = 0;
    while b < 3 {
        let mut k = 0;
        while k < 4 {
            t[b][k] = (0x8080_8000u32 | (4 * k as u32 + b as u32)) as i32;
            k += 1;
        }
        b += 1;
    }
    t
};

/// Bytes `16 c .. 16 c + 16` of `key`, zero past its end; only bytes of `key` are read
/// (overlapping 8- and 4-byte reads for a short remainder).
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
#[inline]
unsafe fn chunk16(key: &[u8], c: usize) -> std::arch::x86_64::__m128i {
    use std::arch::x86_64::*;
    let rest = key.len().saturating_sub(16 * c);
    let p = key.as_ptr().add((16 * c).min(key.len()));
    macro_rules! word {
        ($o:expr) => {
            (p.add($o) as *const u64).read_unaligned()
        };
    }
    macro_rules! dword {
        ($o:expr) => {
            (p.add($o) as *const u32).read_unaligned() as u64
        };
    }
    macro_rules! byte {
        ($o:expr) => {
            *p.add($o) as u64
        };
    }
    let (lo, hi) = if rest >= 16 {
        return _mm_loadu_si128(p as *const __m128i);
    } else if rest >= 8 {
        // the last eight bytes, shifted down past the ones the first word holds
        (word!(0), (word!(rest - 8) >> (8 * (16 - rest) - 1)) >> 1)
    } else if rest >= 4 {
        (dword!(0) | ((dword!(rest - 4) >> (8 * (8 - rest))) << 32), 0)
    } else if rest > 0 {
        (byte!(0) | byte!(rest / 2) << (8 * (rest / 2)) | byte!(rest - 1) << (8 * (rest - 1)), 0)
    } else {
        (0, 0)
    };
    _mm_set_epi64x(hi as i64, lo as i64)
}

/// The shortest and the longest of eight keys' lengths, and the lengths as lanes.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
#[inline]
unsafe fn lengths8(keys: &[&[u8]; 8]) -> (usize, usize, std::arch::x86_64::__m256i) {
    use std::arch::x86_64::*;
    let mut maxlen = 0;
    let mut minlen = usize::MAX;
    for k in keys {
        maxlen = maxlen.max(k.len());
        minlen = minlen.min(k.len());
    }
    // lengths beyond i32 only ever compare as "longer": clamp them
    let l = |k: usize| keys[k].len().min(i32::MAX as usize) as i32;
    (minlen, maxlen, _mm256_setr_epi32(l(0), l(1), l(2), l(3), l(4), l(5), l(6), l(7)))
}

/// FNV-1a of eight keys (one per lane) continued over bytes `from .. todo` of their
/// transposed columns `d` (`columns8!`), which start at byte `offset` of the keys: one xor and
/// one multiplication per byte position for all eight. Unless all lengths are equal (`same`),
/// a lane whose key has ended (`lens`) keeps its state.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
#[inline]
unsafe fn fnv_columns(
    mut h: std::arch::x86_64::__m256i,
    d: &[std::arch::x86_64::__m256i; 4],
    todo: usize,
    same: bool,
    lens: std::arch::x86_64::__m256i,
    offset: usize,
    from: usize,
) -> std::arch::x86_64::__m256i {
    use std::arch::x86_64::*;
    let prime = _mm256_set1_epi32(FNV_PRIME as i32);
    let low_byte = _mm256_set1_epi32(0xFF);
    let sel1 = _mm256_setr_epi32(SEL[1][0], SEL[1][1], SEL[1][2], SEL[1][3], SEL[1][0], SEL[1][1], SEL[1][2], SEL[1][3]);
    let sel2 = _mm256_setr_epi32(SEL[2][0], SEL[2][1], SEL[2][2], SEL[2][3], SEL[2][0], SEL[2][1], SEL[2][2], SEL[2][3]);
    'bytes: for (t, &w) in d.iter().enumerate() {
        for b in 0..4 {
            let pos = 4 * t + b;
            if pos >= todo {
                break 'bytes;
            }
            if pos < from {
                continue;
            }
            let byte = match b {
                0 => _mm256_and_si256(w, low_byte),
                1 => _mm256_shuffle_epi8(w, sel1),
                2 => _mm256_shuffle_epi8(w, sel2),
                _ => _mm256_srli_epi32::<24>(w),
            };
            let next = _mm256_mullo_epi32(_mm256_xor_si256(h, byte), prime);
            h = if same {
                next
            } else {
                let live = _mm256_cmpgt_epi32(lens, _mm256_set1_epi32((offset + pos) as i32));
                _mm256_blendv_epi8(h, next, live)
            };
        }
    }
    h
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
    fn fma_quotient_is_the_division() {
        // the vector path's m / 10000.0: a product corrected by two FMAs, for every m
        let inv = 1.0 / 10_000.0;
        for m in 0..10_000u32 {
            let x = m as f64;
            let q0 = x * inv;
            let q1 = (-q0).mul_add(10_000.0, x).mul_add(inv, q0);
            assert_eq!(q1, x / 10_000.0, "{m}");
        }
    }

    #[test]
    fn magic_divisions_are_exact() {
        let div = |x: u32, (m, pre, sh): (u32, i32, i32)| (((x >> pre) as u64 * m as u64) >> sh) as u32;
        // both sides of every multiple of the divisor near the top, the bottom, and a spread
        for (d, magic) in [(100_000u32, DIV_1E5), (10_000, DIV_1E4)] {
            let mut xs: Vec<u32> = (0..u32::MAX).step_by(997).collect();
            xs.extend((0..=u32::MAX / d).flat_map(|k| [k * d, (k * d).saturating_sub(1), (k * d).saturating_add(d - 1)]));
            xs.extend([0, 1, u32::MAX, u32::MAX - 1]);
            for x in xs {
                assert_eq!(div(x, magic), x / d, "{x} / {d}");
            }
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
        let mut out = vec![0.0; words.len()];
        // every ninth key is left to the caller, as a non-ASCII key would be
        let left = buckets_v2_ascii(&V2Tables::get(), seed_state, &mut out, |i| (i % 9 != 4).then(|| words[i].as_bytes()), |_| ());
        assert_eq!(left, (0..words.len()).filter(|i| i % 9 == 4).collect::<Vec<_>>());
        for &i in &left {
            out[i] = bucket_v2_from_state(fnv1a_utf16(seed_state, &words[i]));
        }
        for (w, o) in words.iter().zip(&out) {
            assert_eq!(*o, bucket_v2("seed", w), "{w}");
        }
    }

    /// Every way `buckets_v2_ascii` can run on this CPU (scalar, AVX2, AVX-512 key reads).
    #[allow(clippy::type_complexity)]
    fn ascii_kernels() -> Vec<(&'static str, fn(&V2Tables, u32, &mut [f64], &dyn Fn(usize) -> Option<&'static [u8]>) -> Vec<usize>)> {
        let mut k: Vec<(&'static str, fn(&V2Tables, u32, &mut [f64], &dyn Fn(usize) -> Option<&'static [u8]>) -> Vec<usize>)> =
            vec![("scalar", |t, s, o, key| buckets_v2_ascii_scalar(t, s, o, key))];
        #[cfg(target_arch = "x86_64")]
        {
            use std::arch::is_x86_feature_detected as has;
            if has!("avx2") {
                // SAFETY: AVX2 checked just above
                k.push(("avx2", |t, s, o, key| unsafe { buckets_v2_ascii_avx2(t, s, o, key, |_| ()) }));
            }
            if has!("avx2") && has!("avx512f") && has!("avx512bw") && has!("avx512vl") {
                // SAFETY: as above
                k.push(("avx512", |t, s, o, key| unsafe { buckets_v2_ascii_avx512(t, s, o, key, |_| ()) }));
            }
            if has!("avx2") && has!("avx512f") && has!("avx512bw") && has!("avx512vl") && has!("fma") && has!("bmi2") {
                // SAFETY: as above
                k.push(("avx512x16", |t, s, o, key| unsafe { buckets_v2_ascii_avx512_16(t, s, o, key, |_| ()) }));
            }
        }
        k
    }

    #[test]
    fn vector_key_hashing_equals_one_by_one() {
        // property test: pseudo-random ASCII keys (every byte value 0..=127, NUL included) of
        // lengths 0..90 mixed within groups of eight; runs of equal lengths 0..70 (all lanes
        // alike, each 16-byte chunk boundary); keys left to the caller (None) here and there;
        // lengths not a multiple of the block or the group
        let mut x = 0x9E37_79B9_7F4A_7C15u64;
        let mut rnd = move |m: u64| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x % m
        };
        let mut words: Vec<String> = Vec::new();
        for _ in 0..3_000 {
            let len = rnd(90) as usize;
            words.push((0..len).map(|_| rnd(128) as u8 as char).collect());
        }
        for len in 0..70 {
            for i in 0..(8 + len % 9) {
                words.push(format!("{i:0>len$}").chars().rev().take(len).collect());
            }
        }
        for i in 0..1_000 {
            words.push(format!("user-{i:08}"));
        }
        // prefixes shared by whole groups (hashed once): of every length, whole keys repeated,
        // keys that differ only by trailing NULs (equal once zero-padded)
        for m in 0..15 {
            for i in 0..20 {
                words.push("p".repeat(m) + &format!("{:0w$}", i % 13, w = 1 + i % 3));
            }
            for _ in 0..9 {
                words.push("q".repeat(m));
            }
        }
        for i in 0..24 {
            words.push("ab".to_string() + &"\0".repeat(i % 5));
        }
        let words: &'static [String] = Box::leak(words.into_boxed_slice());
        let none: Vec<bool> = (0..words.len()).map(|_| rnd(97) == 0).collect();
        let none: &'static [bool] = Box::leak(none.into_boxed_slice());
        let seed_state = fnv1a_utf16(FNV_OFFSET, "exp-2024-pricing");
        let want: Vec<f64> = words.iter().map(|w| bucket_v2("exp-2024-pricing", w)).collect();
        let t = V2Tables::get();
        for (name, kernel) in ascii_kernels() {
            for n in [words.len(), 1, 7, 8, 9, 15, 17, STATE_BLOCK + 3] {
                let key = move |i: usize| (!none[i]).then(|| words[i].as_bytes());
                let mut out = vec![-1.0; n];
                let left = kernel(&t, seed_state, &mut out, &key);
                assert_eq!(left, (0..n).filter(|&i| none[i]).collect::<Vec<_>>(), "{name} n={n}");
                for i in 0..n {
                    if !none[i] {
                        assert_eq!(out[i], want[i], "{name} n={n} key {i} {:?}", words[i]);
                    }
                }
            }
        }
    }

    #[test]
    fn large_outputs_streamed_equal_one_by_one() {
        // past STREAM_MIN (non-temporal output stores), blocks of short keys (the sixteen-key
        // path) between blocks it hands back (a missing key, a long one), and a short tail
        let n = (1 << 19) + 1_000 + 37;
        let words: Vec<String> = (0..n)
            .map(|i| if i % 70_001 == 5 { format!("a-key-longer-than-sixteen-{i}") } else { format!("user-{i:0w$}", w = 1 + i % 11) })
            .collect();
        let words: &'static [String] = Box::leak(words.into_boxed_slice());
        let seed_state = fnv1a_utf16(FNV_OFFSET, "s");
        let t = V2Tables::get();
        let none = |i: usize| i % 90_001 == 3;
        for (name, kernel) in ascii_kernels() {
            let mut out = vec![-1.0; n];
            let left = kernel(&t, seed_state, &mut out, &|i| (!none(i)).then(|| words[i].as_bytes()));
            assert_eq!(left, (0..n).filter(|&i| none(i)).collect::<Vec<_>>(), "{name}");
            for i in (0..n).filter(|&i| !none(i)) {
                assert_eq!(out[i], bucket_v2_from_state(fnv1a_utf16(seed_state, &words[i])), "{name} key {i}");
            }
        }
    }

    #[test]
    fn every_state_kernel_equals_one_by_one() {
        // the stage-two kernels one by one (dispatch runs the widest first)
        let t = V2Tables::get();
        let mut states: Vec<u32> = (0..100_000u32).flat_map(|r| [r, 100_000 + r, 4_294_800_000 + r.min(67_295)]).collect();
        states.extend((0..u32::MAX).step_by(7_919));
        let want: Vec<f64> = states.iter().map(|&s| bucket_v2_from_state(s)).collect();
        #[cfg(target_arch = "x86_64")]
        {
            use std::arch::is_x86_feature_detected as has;
            let mut out = vec![-1.0; states.len()];
            if has!("avx2") && has!("fma") {
                // SAFETY: AVX2 and FMA checked just above
                let done = unsafe { t.buckets_avx2(&states, &mut out) };
                assert_eq!(out[..done], want[..done]);
                assert_eq!(done, states.len() / 8 * 8);
            }
            if has!("avx512f") && has!("fma") {
                // SAFETY: AVX-512F and FMA checked just above
                let done = unsafe { t.buckets_avx512(&states, &mut out) };
                assert_eq!(out[..done], want[..done]);
                assert_eq!(done, states.len() / 16 * 16);
            }
        }
        let mut out = vec![-1.0; states.len()];
        t.buckets(&states, &mut out);
        assert_eq!(out, want);
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
