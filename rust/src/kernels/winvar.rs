//! Rolling population standard deviation (TA-Lib STDDEV) and z-score, four bars per
//! instruction.
//!
//! Why: the sliding-variance step is ~20 floating-point operations per bar, so one bar at a
//! time is bound by instruction throughput, not by memory. The rows are cut into segments on a
//! fixed grid (`seg_len`: 512 rows, longer for long periods); the state is recomputed exactly
//! from the window at the start of every segment (and at the first output row), so segments are
//! independent: four of them advance side by side in the lanes of one AVX register, and a
//! segment computed alone (one lane, plain f64) gives the same bits, because both run the same
//! IEEE operations in the same order (no FMA). Any block split, thread count or CPU gives the
//! same result.
//!
//! Within a segment the state is pivot-shifted sums (d = v - pivot) over the p - 1 newest
//! values: a step forms the full window's sums off the loop-carried chain and advances the
//! chain by one addition of (d_new - d_old). A lane recomputes its sums exactly around the
//! window's mean (cold path) when the pivot has drifted so far from the mean that
//! `s2 / p - mean^2` would cancel (mean^2 > 64 var: at most ~130 ulps lost): TA-Lib 0.8's
//! accurate VAR/STDDEV to ~1e-12 relative. A NaN at or after the series start makes every later
//! value NaN, like TA-Lib's running sums.
//!
//! A call may compute ahead to the end of its segment group (outputs are full-length slices
//! owned by this kernel); later calls skip what is done.

use super::ta::{begin_index, Kernel};

/// Rows per segment for period `p`: a power of two >= 512 and >= 8p (the exact recomputation
/// at a segment start costs O(p)).
fn seg_len(p: usize) -> usize {
    (8 * p).next_power_of_two().max(512)
}

/// Arithmetic on one lane (`f64`) or four (`Avx4`): the same IEEE operations either way.
trait Lanes: Copy {
    const N: usize;
    fn splat(v: f64) -> Self;
    /// `p[0], p[stride], ...` (N values).
    unsafe fn load(p: *const f64, stride: usize) -> Self;
    unsafe fn store(self, p: *mut f64, stride: usize);
    fn add(self, o: Self) -> Self;
    fn sub(self, o: Self) -> Self;
    fn mul(self, o: Self) -> Self;
    /// Bit k set where lane k of self > o.
    fn gt_mask(self, o: Self) -> u32;
    /// TA-Lib 0.8: negative (rounding) variance gives 0; NaN stays NaN.
    fn std_of(self) -> Self;
    /// self / sd where sd > 0, else NaN.
    fn z_of(self, sd: Self) -> Self;
    fn to_array(self) -> [f64; 4];
    fn from_array(a: [f64; 4]) -> Self;
}

impl Lanes for f64 {
    const N: usize = 1;
    #[inline(always)]
    fn splat(v: f64) -> Self {
        v
    }
    #[inline(always)]
    unsafe fn load(p: *const f64, _: usize) -> Self {
        *p
    }
    #[inline(always)]
    unsafe fn store(self, p: *mut f64, _: usize) {
        *p = self;
    }
    #[inline(always)]
    fn add(self, o: Self) -> Self {
        self + o
    }
    #[inline(always)]
    fn sub(self, o: Self) -> Self {
        self - o
    }
    #[inline(always)]
    fn mul(self, o: Self) -> Self {
        self * o
    }
    #[inline(always)]
    fn gt_mask(self, o: Self) -> u32 {
        (self > o) as u32
    }
    #[inline(always)]
    fn std_of(self) -> Self {
        if self < 0.0 {
            0.0
        } else {
            self.sqrt()
        }
    }
    #[inline(always)]
    fn z_of(self, sd: Self) -> Self {
        if sd > 0.0 {
            self / sd
        } else {
            f64::NAN
        }
    }
    #[inline(always)]
    fn to_array(self) -> [f64; 4] {
        [self, 0.0, 0.0, 0.0]
    }
    #[inline(always)]
    fn from_array(a: [f64; 4]) -> Self {
        a[0]
    }
}

#[cfg(target_arch = "x86_64")]
mod avx {
    use std::arch::x86_64::*;

    /// Four f64 lanes; only used inside `#[target_feature(enable = "avx")]` functions.
    #[derive(Clone, Copy)]
    pub struct Avx4(__m256d);

    impl super::Lanes for Avx4 {
        const N: usize = 4;
        #[inline(always)]
        fn splat(v: f64) -> Self {
            unsafe { Avx4(_mm256_set1_pd(v)) }
        }
        #[inline(always)]
        unsafe fn load(p: *const f64, stride: usize) -> Self {
            Avx4(_mm256_setr_pd(*p, *p.add(stride), *p.add(2 * stride), *p.add(3 * stride)))
        }
        #[inline(always)]
        unsafe fn store(self, p: *mut f64, stride: usize) {
            let lo = _mm256_castpd256_pd128(self.0);
            let hi = _mm256_extractf128_pd(self.0, 1);
            _mm_storel_pd(p, lo);
            _mm_storeh_pd(p.add(stride), lo);
            _mm_storel_pd(p.add(2 * stride), hi);
            _mm_storeh_pd(p.add(3 * stride), hi);
        }
        #[inline(always)]
        fn add(self, o: Self) -> Self {
            unsafe { Avx4(_mm256_add_pd(self.0, o.0)) }
        }
        #[inline(always)]
        fn sub(self, o: Self) -> Self {
            unsafe { Avx4(_mm256_sub_pd(self.0, o.0)) }
        }
        #[inline(always)]
        fn mul(self, o: Self) -> Self {
            unsafe { Avx4(_mm256_mul_pd(self.0, o.0)) }
        }
        #[inline(always)]
        fn gt_mask(self, o: Self) -> u32 {
            unsafe { _mm256_movemask_pd(_mm256_cmp_pd::<_CMP_GT_OQ>(self.0, o.0)) as u32 }
        }
        #[inline(always)]
        fn std_of(self) -> Self {
            unsafe {
                let neg = _mm256_cmp_pd::<_CMP_LT_OQ>(self.0, _mm256_setzero_pd());
                Avx4(_mm256_andnot_pd(neg, _mm256_sqrt_pd(self.0)))
            }
        }
        #[inline(always)]
        fn z_of(self, sd: Self) -> Self {
            unsafe {
                let pos = _mm256_cmp_pd::<_CMP_GT_OQ>(sd.0, _mm256_setzero_pd());
                Avx4(_mm256_blendv_pd(_mm256_set1_pd(f64::NAN), _mm256_div_pd(self.0, sd.0), pos))
            }
        }
        #[inline(always)]
        fn to_array(self) -> [f64; 4] {
            let mut a = [0.0; 4];
            unsafe { _mm256_storeu_pd(a.as_mut_ptr(), self.0) };
            a
        }
        #[inline(always)]
        fn from_array(a: [f64; 4]) -> Self {
            unsafe { Avx4(_mm256_loadu_pd(a.as_ptr())) }
        }
    }
}

/// The exact state for the window `win` (p values, newest last): (pivot, sums over its p - 1
/// newest values, variance, newest - mean). The pivot is the window's mean (`fallback` when
/// that is not finite). Out of line: the hot loops keep their state in registers.
#[cold]
#[inline(never)]
fn fresh(fallback: f64, inv: f64, win: &[f64]) -> (f64, f64, f64, f64, f64) {
    let mean = win.iter().fold(0.0, |a, &v| a + v) * inv;
    let pivot = if mean.is_finite() { mean } else { fallback };
    let (mut s1, mut s2) = (0.0, 0.0);
    for &w in win {
        let d = w - pivot;
        s1 += d;
        s2 += d * d;
    }
    let m = s1 * inv;
    let var = s2 * inv - m * m;
    let d0 = win[0] - pivot;
    (pivot, s1 - d0, s2 - d0 * d0, var, (win[win.len() - 1] - pivot) - m)
}

/// What a kernel writes from (variance, x - mean).
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Out {
    Stddev,
    Zscore,
}

impl Out {
    #[inline(always)]
    fn value<L: Lanes>(self, var: L, dev: L) -> L {
        match self {
            Out::Stddev => var.std_of(),
            Out::Zscore => dev.z_of(var.std_of()),
        }
    }
}

/// Rows `start..start + len` of `L::N` segments `stride` rows apart (lane k: `start + k *
/// stride`), the first row of each from `fresh`. `x` holds no NaN in these rows' windows.
///
/// # Safety
/// Every row r touched has `p - 1 <= r < x.len()` and `r < out.len()`.
#[inline(always)]
unsafe fn segments<L: Lanes>(x: &[f64], p: usize, out: &mut [f64], start: usize, len: usize, stride: usize, what: Out) {
    let inv_s = 1.0 / p as f64;
    let (inv, c64) = (L::splat(inv_s), L::splat(64.0));
    let (xp, op) = (x.as_ptr(), out.as_mut_ptr());
    // the first row of every lane: the exact state
    let (mut pv, mut a1, mut a2, mut vv, mut dv) = ([0.0; 4], [0.0; 4], [0.0; 4], [0.0; 4], [0.0; 4]);
    for k in 0..L::N {
        let r = start + k * stride;
        let win = &x[r + 1 - p..=r];
        (pv[k], a1[k], a2[k], vv[k], dv[k]) = fresh(win[p - 1], inv_s, win);
    }
    what.value(L::from_array(vv), L::from_array(dv)).store(op.add(start), stride);
    let (mut pivot, mut s1, mut s2) = (L::from_array(pv), L::from_array(a1), L::from_array(a2));
    for j in 1..len {
        let r = start + j;
        let newest = L::load(xp.add(r), stride);
        let oldest = L::load(xp.add(r + 1 - p), stride);
        // the row's window sums off the chain; the chain advances by one addition each
        let dn = newest.sub(pivot);
        let dold = oldest.sub(pivot);
        let dn2 = dn.mul(dn);
        let w1 = s1.add(dn);
        let w2 = s2.add(dn2);
        let m = w1.mul(inv);
        let mut var = w2.mul(inv).sub(m.mul(m));
        let mut dev = dn.sub(m);
        s1 = s1.add(dn.sub(dold));
        s2 = s2.add(dn2.sub(dold.mul(dold)));
        let redo = m.mul(m).gt_mask(c64.mul(var));
        if redo != 0 {
            // cold: the lanes whose pivot drifted restart from the exact state
            let (mut pv, mut a1, mut a2) = (pivot.to_array(), s1.to_array(), s2.to_array());
            let (mut vv, mut dvv) = (var.to_array(), dev.to_array());
            for k in 0..L::N {
                if redo & (1 << k) != 0 {
                    let rk = r + k * stride;
                    (pv[k], a1[k], a2[k], vv[k], dvv[k]) = fresh(pv[k], inv_s, &x[rk + 1 - p..=rk]);
                }
            }
            (pivot, s1, s2) = (L::from_array(pv), L::from_array(a1), L::from_array(a2));
            (var, dev) = (L::from_array(vv), L::from_array(dvv));
        }
        what.value(var, dev).store(op.add(r), stride);
    }
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx")]
unsafe fn segments_avx(x: &[f64], p: usize, out: &mut [f64], start: usize, seg: usize, what: Out) {
    segments::<avx::Avx4>(x, p, out, start, seg, seg, what)
}

fn has_avx() -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        std::arch::is_x86_feature_detected!("avx")
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        false
    }
}

/// NaN-free rows `lo..hi` (all >= the first output row `first`): whole groups of four aligned
/// segments four lanes at a time where the CPU has AVX, the rest one segment at a time.
fn rows(x: &[f64], p: usize, first: usize, out: &mut [f64], lo: usize, hi: usize, what: Out, avx: bool) {
    assert!(first + 1 >= p && hi <= x.len() && hi <= out.len() && lo >= first);
    let seg = seg_len(p);
    let mut r = lo;
    while r < hi {
        let seg_end = ((r / seg) + 1) * seg;
        if avx && r % seg == 0 && r + 4 * seg <= hi {
            #[cfg(target_arch = "x86_64")]
            {
                // SAFETY: rows r..r + 4 seg lie in first..hi (checked above); AVX is present
                unsafe { segments_avx(x, p, out, r, seg, what) };
                r += 4 * seg;
                continue;
            }
        }
        let end = seg_end.min(hi);
        // SAFETY: as above; one lane
        unsafe { segments::<f64>(x, p, out, r, end - r, 0, what) };
        r = end;
    }
}

/// Whether `xs` holds a NaN (a branch-free pass over blocks, vectorised).
fn any_nan(xs: &[f64]) -> bool {
    xs.chunks(256).any(|c| c.iter().fold(false, |acc, v| acc | v.is_nan()))
}

/// The kernel state shared by `Stddev` and `Zscore`.
struct Rolling<'a> {
    x: &'a [f64],
    p: usize,
    b: usize,
    what: Out,
    /// rows below this are written (a call may compute ahead to its segment group's end)
    done: usize,
    /// a NaN was met at or after `b`: every row from there on is NaN
    poisoned: bool,
    avx: bool,
}

impl<'a> Rolling<'a> {
    fn new(x: &'a [f64], p: usize, what: Out) -> Self {
        Rolling { x, p, b: begin_index(&[x]), what, done: 0, poisoned: false, avx: has_avx() }
    }

    fn run(&mut self, lo: usize, hi: usize, out: &mut [f64]) {
        let (x, p) = (self.x, self.p);
        let n = x.len().min(out.len());
        let lo = lo.max(self.done);
        let hi = hi.min(n);
        if lo >= hi {
            return;
        }
        let first = self.b + p - 1;
        let mut r = lo;
        if r < first {
            let end = first.min(hi);
            out[r..end].fill(f64::NAN);
            let warm_from = r.max(self.b);
            if warm_from < end && x[warm_from..end].iter().any(|v| v.is_nan()) {
                self.poisoned = true;
            }
            r = end;
        }
        // compute ahead to the end of the segment group holding hi - 1 (whole groups for AVX)
        let seg = seg_len(p);
        let target = if r < hi { (((hi - 1) / (4 * seg)) + 1) * 4 * seg } else { hi };
        let target = target.min(n).max(hi);
        if r < target {
            let nan_at = if self.poisoned {
                Some(r)
            } else if any_nan(&x[r..target]) {
                x[r..target].iter().position(|v| v.is_nan()).map(|k| r + k)
            } else {
                None
            };
            let clean_end = nan_at.unwrap_or(target);
            if r < clean_end {
                rows(x, p, first, out, r, clean_end, self.what, self.avx);
            }
            if clean_end < target {
                self.poisoned = true;
                out[clean_end..target].fill(f64::NAN);
            }
            r = target;
        }
        self.done = r;
    }
}

/// TA-Lib STDDEV (population standard deviation over `p` rows, nbdev = 1).
pub struct Stddev<'a>(Rolling<'a>);

impl<'a> Stddev<'a> {
    pub fn new(x: &'a [f64], p: usize) -> Self {
        Stddev(Rolling::new(x, p, Out::Stddev))
    }
}

impl Kernel for Stddev<'_> {
    fn cost(&self) -> u32 {
        2
    }
    fn run(&mut self, lo: usize, hi: usize, out: &mut [&mut [f64]]) {
        self.0.run(lo, hi, out[0]);
    }
}

/// z-score against the trailing window: (x - mean) / STDDEV, NaN where STDDEV is 0. The mean
/// comes from the same pivot-shifted sums as the deviation (x - mean = (x - pivot) - (mean -
/// pivot)): no second running sum, and closer to the exact value than TA-Lib's SMA.
pub struct Zscore<'a>(Rolling<'a>);

impl<'a> Zscore<'a> {
    pub fn new(x: &'a [f64], p: usize) -> Self {
        Zscore(Rolling::new(x, p, Out::Zscore))
    }
}

impl Kernel for Zscore<'_> {
    fn cost(&self) -> u32 {
        2
    }
    fn run(&mut self, lo: usize, hi: usize, out: &mut [&mut [f64]]) {
        self.0.run(lo, hi, out[0]);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kernels::ta::run_alone;

    fn walk(n: usize, seed: u64, level: f64) -> Vec<f64> {
        let mut s = seed;
        let mut v = level;
        (0..n)
            .map(|i| {
                s ^= s << 13;
                s ^= s >> 7;
                s ^= s << 17;
                v += (s % 1000) as f64 / 1000.0 - 0.5;
                // level jumps: the data-triggered recomputation in some lanes
                if i % 3000 == 1500 {
                    v += 1e6;
                }
                v
            })
            .collect()
    }

    fn exact_std(x: &[f64], p: usize, i: usize) -> f64 {
        let w = &x[i + 1 - p..=i];
        let mean = w.iter().sum::<f64>() / p as f64;
        (w.iter().map(|v| (v - mean) * (v - mean)).sum::<f64>() / p as f64).sqrt()
    }

    #[test]
    fn lanes_blocks_and_one_lane_agree_bit_for_bit() {
        let x = walk(20_000, 7, 100.0);
        for p in [2, 20, 30, 100] {
            for what in [Out::Stddev, Out::Zscore] {
                let make = || -> Box<dyn Kernel> {
                    match what {
                        Out::Stddev => Box::new(Stddev::new(&x, p)),
                        Out::Zscore => Box::new(Zscore::new(&x, p)),
                    }
                };
                let whole = run_alone(make().as_mut(), x.len()).remove(0);
                // one lane everywhere
                let mut one = vec![0.0; x.len()];
                let first = p - 1;
                one[..first].fill(f64::NAN);
                rows(&x, p, first, &mut one, first, x.len(), what, false);
                // uneven blocks
                let mut k = make();
                let mut blocks = vec![0.0; x.len()];
                let (mut lo, mut j) = (0, 0);
                while lo < x.len() {
                    let hi = (lo + [7, 2, 1, 3000, 5][j % 5]).min(x.len());
                    k.run(lo, hi, &mut [blocks.as_mut_slice()]);
                    lo = hi;
                    j += 1;
                }
                for (i, ((a, b), c)) in whole.iter().zip(&one).zip(&blocks).enumerate() {
                    assert!(a.to_bits() == b.to_bits() && a.to_bits() == c.to_bits(), "{what:?} p={p} row {i}: {a} {b} {c}");
                }
                if what == Out::Stddev {
                    for i in (first..x.len()).step_by(97) {
                        let e = exact_std(&x, p, i);
                        assert!((whole[i] - e).abs() <= 1e-9 * e + 1e-7, "p={p} row {i}: {} vs {e}", whole[i]);
                    }
                }
            }
        }
    }

    #[test]
    fn nan_poisons_every_later_row() {
        let mut x = walk(10_000, 3, 50.0);
        x[0] = f64::NAN; // a leading NaN is skipped (the series starts after it)
        x[6000] = f64::NAN;
        let o = run_alone(&mut Stddev::new(&x, 10), x.len()).remove(0);
        assert!(o[..10].iter().all(|v| v.is_nan()) && o[10].is_finite());
        assert!(o[5999].is_finite() && o[6000..].iter().all(|v| v.is_nan()));
    }
}
