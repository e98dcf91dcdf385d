//! Technical indicators with TA-Lib's conventions (the `talib` Python wrapper over TA-Lib C):
//! leading NaNs are skipped (the series starts at the first non-NaN bar), outputs before
//! `start + lookback` are NaN, EMAs are seeded with the SMA of their first `period` values,
//! RSI/ATR use Wilder smoothing seeded with a simple average, MACD aligns the fast EMA's seed
//! window with the slow one's, STDDEV is the population standard deviation.
//!
//! Recursions are evaluated in algebraically identical forms that keep divisions off the
//! loop-carried chain (Wilder: `avg = avg * (p-1)/p + v/p`; EMA: `ema * (1-k) + x * k`), which
//! agree with TA-Lib to ~1e-14 relative rather than bit for bit.
//!
//! Every indicator is a resumable state machine: `run(lo, hi, out)` processes rows lo..hi and can
//! be called block by block, which is what the fused multi-indicator pass does.

/// First index where all inputs are non-NaN (TA-Lib wrapper's `check_begidx`), len-1 if none.
pub fn begin_index(cols: &[&[f64]]) -> usize {
    let n = cols.first().map_or(0, |c| c.len());
    (0..n).find(|&i| cols.iter().all(|c| !c[i].is_nan())).unwrap_or(n.saturating_sub(1))
}

#[inline]
fn per_to_k(p: usize) -> f64 {
    2.0 / ((p + 1) as f64)
}

/// Two steps of the smoothing `e = e * a + c` at once from `prev`: (e1, e2) with
/// e2 = prev * a^2 + (c1 * a + c2), so the loop-carried chain advances once per two bars
/// (the same average, rounded differently: ~1e-16 relative per step). Kernels pair bars from
/// their first smoothed bar on and, when a block ends between the two bars of a pair, finish
/// that pair at the next call from the saved start, so any block split gives the same bits.
#[inline(always)]
fn pair(prev: f64, a: f64, a2: f64, c1: f64, c2: f64) -> (f64, f64) {
    (prev * a + c1, prev * a2 + (c1 * a + c2))
}

/// A resumable indicator writing into full-length output slices (absolute indices).
pub trait Kernel: Send {
    fn n_outputs(&self) -> usize {
        1
    }
    /// Processes rows `lo..hi`; calls must cover 0..n in order.
    fn run(&mut self, lo: usize, hi: usize, out: &mut [&mut [f64]]);
    /// Rough relative cost per row, for splitting work across threads.
    fn cost(&self) -> u32 {
        2
    }
}

#[inline]
fn nan_fill(out: &mut [f64], lo: usize, hi: usize) {
    if lo < hi {
        out[lo..hi].fill(f64::NAN);
    }
}

/// Splits lo..hi at `at`: (lo..min(hi,at), max(lo,at)..hi).
#[inline]
fn split(lo: usize, hi: usize, at: usize) -> (usize, usize, usize) {
    let mid = at.clamp(lo, hi);
    (lo, mid, hi)
}

pub struct Sma<'a> {
    x: &'a [f64],
    p: usize,
    b: usize,
    /// sum of the window ending at the previous row (during the warm-up: the values so far)
    total: f64,
    /// the previous call ended after the first bar of a pair; `total` is the pair's start
    mid_pair: bool,
}

impl<'a> Sma<'a> {
    pub fn new(x: &'a [f64], p: usize) -> Self {
        Sma { x, p, b: begin_index(&[x]), total: 0.0, mid_pair: false }
    }
}

impl Kernel for Sma<'_> {
    /// The window sum advances by (x[i] - x[i-p]), two bars per addition on the loop-carried
    /// chain (the first bar's sum is formed off it), one division instruction for two bars.
    /// A running sum like TA-Lib's (which adds then subtracts on the chain), rounded
    /// differently: ~1e-15 relative.
    fn run(&mut self, lo: usize, hi: usize, out: &mut [&mut [f64]]) {
        let out = &mut *out[0];
        let (x, p, b) = (self.x, self.p, self.b);
        let first = b + p - 1;
        let pf = p as f64;
        let (lo, mid, hi) = split(lo, hi, first + 1);
        for i in lo..mid {
            if i >= b {
                self.total += x[i];
            }
            out[i] = if i == first { self.total / pf } else { f64::NAN };
        }
        let mut total = self.total;
        let mut i = mid;
        if self.mid_pair && i < hi {
            let t1 = total + ((x[i - 1] - x[i - 1 - p]) + (x[i] - x[i - p]));
            out[i] = t1 / pf;
            total = t1;
            self.mid_pair = false;
            i += 1;
        }
        while i + 1 < hi {
            let d0 = x[i] - x[i - p];
            let d1 = x[i + 1] - x[i + 1 - p];
            let t0 = total + d0;
            let t1 = total + (d0 + d1);
            let [a, b] = div2([t0, t1], [pf, pf]);
            out[i] = a;
            out[i + 1] = b;
            total = t1;
            i += 2;
        }
        if i < hi {
            out[i] = (total + (x[i] - x[i - p])) / pf;
            self.mid_pair = true;
        }
        self.total = total;
    }
}

pub struct Ema<'a> {
    x: &'a [f64],
    p: usize,
    k: f64,
    b: usize,
    prev: f64,
    /// the previous call ended after the first bar of a pair; `prev` is the pair's start
    mid_pair: bool,
}

impl<'a> Ema<'a> {
    pub fn new(x: &'a [f64], p: usize) -> Self {
        Ema { x, p, k: per_to_k(p), b: begin_index(&[x]), prev: 0.0, mid_pair: false }
    }
}

impl Kernel for Ema<'_> {
    fn run(&mut self, lo: usize, hi: usize, out: &mut [&mut [f64]]) {
        let out = &mut *out[0];
        let (x, p, b, k) = (self.x, self.p, self.b, self.k);
        let first = b + p - 1;
        let (lo, mid, hi) = split(lo, hi, first + 1);
        for i in lo..mid {
            if i >= b {
                self.prev += x[i]; // seed: running sum of the first p values
            }
            if i == first {
                self.prev /= p as f64;
                out[i] = self.prev;
            } else {
                out[i] = f64::NAN;
            }
        }
        let mut prev = self.prev;
        let keep = 1.0 - k;
        let keep2 = keep * keep;
        let mut i = mid;
        if self.mid_pair && i < hi {
            let (_, e2) = pair(prev, keep, keep2, x[i - 1] * k, x[i] * k);
            out[i] = e2;
            prev = e2;
            self.mid_pair = false;
            i += 1;
        }
        while i + 1 < hi {
            let (e1, e2) = pair(prev, keep, keep2, x[i] * k, x[i + 1] * k);
            out[i] = e1;
            out[i + 1] = e2;
            prev = e2;
            i += 2;
        }
        if i < hi {
            out[i] = prev * keep + x[i] * k;
            self.mid_pair = true;
        }
        self.prev = prev;
    }
}

/// TA-Lib 0.8: 0 when there was no movement (and when the averages are NaN).
#[inline]
fn rsi_value(gain: f64, loss: f64) -> f64 {
    let s = gain + loss;
    if s > 0.0 {
        100.0 * (gain / s)
    } else {
        0.0
    }
}

pub struct Rsi<'a> {
    x: &'a [f64],
    p: usize,
    b: usize,
    prev_value: f64,
    gain: f64,
    loss: f64,
}

impl<'a> Rsi<'a> {
    pub fn new(x: &'a [f64], p: usize) -> Self {
        Rsi { x, p, b: begin_index(&[x]), prev_value: 0.0, gain: 0.0, loss: 0.0 }
    }
}

impl Kernel for Rsi<'_> {
    fn cost(&self) -> u32 {
        4
    }
    fn run(&mut self, lo: usize, hi: usize, out: &mut [&mut [f64]]) {
        let out = &mut *out[0];
        let (x, p, b) = (self.x, self.p, self.b);
        let first = b + p;
        let pf = p as f64;
        let pm1 = (p - 1) as f64;
        let (lo, mid, hi) = split(lo, hi, first + 1);
        for i in lo..mid {
            if i < b {
                out[i] = f64::NAN;
                continue;
            }
            if i == b {
                self.prev_value = x[i];
                out[i] = f64::NAN;
                continue;
            }
            let d = x[i] - self.prev_value;
            self.prev_value = x[i];
            if d < 0.0 {
                self.loss -= d;
            } else {
                self.gain += d;
            }
            if i == first {
                self.loss /= pf;
                self.gain /= pf;
                out[i] = rsi_value(self.gain, self.loss);
            } else {
                out[i] = f64::NAN;
            }
        }
        let (mut prev, mut gain, mut loss) = (self.prev_value, self.gain, self.loss);
        let (a, b) = (pm1 / pf, 1.0 / pf);
        // bars in pairs: one division instruction for two
        let mut pairs = out[mid..hi].chunks_exact_mut(2);
        let mut xs = x[mid..hi].chunks_exact(2);
        for (o, v) in (&mut pairs).zip(&mut xs) {
            let mut g = [0.0; 2];
            let mut s = [0.0; 2];
            for j in 0..2 {
                let d = v[j] - prev;
                prev = v[j];
                // branch-free split of the move into gain and loss (a NaN move lands in the
                // gain, as in TA-Lib, whose averages then stay NaN)
                let up = if d < 0.0 { 0.0 } else { d };
                let down = if d < 0.0 { -d } else { 0.0 };
                gain = gain * a + up * b;
                loss = loss * a + down * b;
                g[j] = gain;
                s[j] = gain + loss;
            }
            let q = div2(g, s);
            o[0] = if s[0] > 0.0 { 100.0 * q[0] } else { 0.0 };
            o[1] = if s[1] > 0.0 { 100.0 * q[1] } else { 0.0 };
        }
        for (o, &v) in pairs.into_remainder().iter_mut().zip(xs.remainder()) {
            let d = v - prev;
            prev = v;
            let up = if d < 0.0 { 0.0 } else { d };
            let down = if d < 0.0 { -d } else { 0.0 };
            gain = gain * a + up * b;
            loss = loss * a + down * b;
            *o = rsi_value(gain, loss);
        }
        self.prev_value = prev;
        self.gain = gain;
        self.loss = loss;
    }
}

/// TA-Lib's true range: h - l, replaced by |c' - h| then |c' - l| when strictly greater
/// (selects, not branches: the comparisons are data-dependent).
#[inline(always)]
fn true_range(h: f64, l: f64, prev_close: f64) -> f64 {
    let g = h - l;
    let v2 = (prev_close - h).abs();
    let g = if v2 > g { v2 } else { g };
    let v3 = (prev_close - l).abs();
    if v3 > g {
        v3
    } else {
        g
    }
}

pub struct Atr<'a> {
    h: &'a [f64],
    l: &'a [f64],
    c: &'a [f64],
    p: usize,
    b: usize,
    prev: f64,
    /// the previous call ended after the first bar of a pair; `prev` is the pair's start
    mid_pair: bool,
}

impl<'a> Atr<'a> {
    pub fn new(h: &'a [f64], l: &'a [f64], c: &'a [f64], p: usize) -> Self {
        Atr { h, l, c, p, b: begin_index(&[h, l, c]), prev: 0.0, mid_pair: false }
    }
}

impl Kernel for Atr<'_> {
    fn cost(&self) -> u32 {
        4
    }
    fn run(&mut self, lo: usize, hi: usize, out: &mut [&mut [f64]]) {
        let out = &mut *out[0];
        let (h, l, c, p, b) = (self.h, self.l, self.c, self.p, self.b);
        if p == 1 {
            // TA-Lib's ATR(1) is the true range itself
            for i in lo..hi {
                out[i] = if i > b { true_range(h[i], l[i], c[i - 1]) } else { f64::NAN };
            }
            return;
        }
        let first = b + p;
        let pf = p as f64;
        let pm1 = (p - 1) as f64;
        let (lo, mid, hi) = split(lo, hi, first + 1);
        for i in lo..mid {
            if i <= b {
                out[i] = f64::NAN;
                continue;
            }
            self.prev += true_range(h[i], l[i], c[i - 1]);
            if i == first {
                self.prev /= pf;
                out[i] = self.prev;
            } else {
                out[i] = f64::NAN;
            }
        }
        let mut prev = self.prev;
        let (a, b) = (pm1 / pf, 1.0 / pf);
        let a2 = a * a;
        let tr = |i: usize| true_range(h[i], l[i], c[i - 1]) * b;
        let mut i = mid;
        if self.mid_pair && i < hi {
            let (_, e2) = pair(prev, a, a2, tr(i - 1), tr(i));
            out[i] = e2;
            prev = e2;
            self.mid_pair = false;
            i += 1;
        }
        while i + 1 < hi {
            let (e1, e2) = pair(prev, a, a2, tr(i), tr(i + 1));
            out[i] = e1;
            out[i + 1] = e2;
            prev = e2;
            i += 2;
        }
        if i < hi {
            out[i] = prev * a + tr(i);
            self.mid_pair = true;
        }
        self.prev = prev;
    }
}

/// Two correctly rounded divisions in one SSE2 instruction (part of every x86_64), so two bars
/// share the divider's slot; the same bits as `/` on each lane.
#[inline(always)]
fn div2(a: [f64; 2], b: [f64; 2]) -> [f64; 2] {
    #[cfg(target_arch = "x86_64")]
    {
        use std::arch::x86_64::{_mm_div_pd, _mm_setr_pd, _mm_storeu_pd};
        let mut out = [0.0; 2];
        // SAFETY: SSE2 is part of the x86_64 baseline; `out` holds two f64
        unsafe { _mm_storeu_pd(out.as_mut_ptr(), _mm_div_pd(_mm_setr_pd(a[0], a[1]), _mm_setr_pd(b[0], b[1]))) };
        out
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        [a[0] / b[0], a[1] / b[1]]
    }
}

pub use super::winvar::{Stddev, Zscore};

/// TA-Lib ROC ((x/x[-k] - 1) * 100) or ROCP (`returns`: (x - x[-k]) / x[-k]); 0 when x[-k] == 0.
pub struct Roc<'a> {
    x: &'a [f64],
    p: usize,
    b: usize,
    percent: bool,
}

impl<'a> Roc<'a> {
    pub fn new(x: &'a [f64], p: usize, percent: bool) -> Self {
        Roc { x, p, b: begin_index(&[x]), percent }
    }
}

impl Kernel for Roc<'_> {
    fn cost(&self) -> u32 {
        1
    }
    fn run(&mut self, lo: usize, hi: usize, out: &mut [&mut [f64]]) {
        let out = &mut *out[0];
        let (x, p) = (self.x, self.p);
        let (lo, mid, hi) = split(lo, hi, self.b + p);
        nan_fill(out, lo, mid);
        if mid >= hi {
            return;
        }
        let (cur, prev) = (&x[mid..hi], &x[mid - p..hi - p]);
        let out = &mut out[mid..hi];
        // element-wise selects (vectorised): the division of a 0 divisor is computed and dropped
        if self.percent {
            for ((o, &c), &q) in out.iter_mut().zip(cur).zip(prev) {
                let r = ((c / q) - 1.0) * 100.0;
                *o = if q != 0.0 { r } else { 0.0 };
            }
        } else {
            for ((o, &c), &q) in out.iter_mut().zip(cur).zip(prev) {
                let r = (c - q) / q;
                *o = if q != 0.0 { r } else { 0.0 };
            }
        }
    }
}

/// TA-Lib MACD: outputs (macd, signal, histogram).
pub struct Macd<'a> {
    x: &'a [f64],
    fast: usize,
    slow: usize,
    signal: usize,
    b: usize,
    fast_ema: f64,
    slow_ema: f64,
    sig_ema: f64,
    /// the previous call ended after the first bar of a pair; the EMAs hold the pair's start
    mid_pair: bool,
}

impl<'a> Macd<'a> {
    pub fn new(x: &'a [f64], fast: usize, slow: usize, signal: usize) -> Self {
        let (fast, slow) = if slow < fast { (slow, fast) } else { (fast, slow) };
        Macd { x, fast, slow, signal, b: begin_index(&[x]), fast_ema: 0.0, slow_ema: 0.0, sig_ema: 0.0, mid_pair: false }
    }
    pub fn lookback(fast: usize, slow: usize, signal: usize) -> usize {
        fast.max(slow) - 1 + signal - 1
    }
}

impl Kernel for Macd<'_> {
    fn n_outputs(&self) -> usize {
        3
    }
    fn cost(&self) -> u32 {
        3
    }
    fn run(&mut self, lo: usize, hi: usize, out: &mut [&mut [f64]]) {
        let (x, b) = (self.x, self.b);
        let (fast, slow, signal) = (self.fast, self.slow, self.signal);
        let (kf, ks, kg) = (per_to_k(fast), per_to_k(slow), per_to_k(signal));
        let s0 = b + slow - 1; // first MACD line value
        let f_start = b + slow - fast; // fast EMA seed window ends with the slow one's
        let first = s0 + signal - 1; // first signal value
        let (lo, mid, hi) = split(lo, hi, first + 1);
        for i in lo..mid {
            let mut line = f64::NAN;
            if i >= b && i <= s0 {
                self.slow_ema += x[i];
                if i >= f_start {
                    self.fast_ema += x[i];
                }
                if i == s0 {
                    self.slow_ema /= slow as f64;
                    self.fast_ema /= fast as f64;
                    line = self.fast_ema - self.slow_ema;
                }
            } else if i > s0 {
                self.slow_ema = ((x[i] - self.slow_ema) * ks) + self.slow_ema;
                self.fast_ema = ((x[i] - self.fast_ema) * kf) + self.fast_ema;
                line = self.fast_ema - self.slow_ema;
            }
            if i >= s0 {
                self.sig_ema += line;
            }
            if i == first {
                self.sig_ema /= signal as f64;
                out[0][i] = line;
                out[1][i] = self.sig_ema;
                out[2][i] = line - self.sig_ema;
            } else {
                out[0][i] = f64::NAN;
                out[1][i] = f64::NAN;
                out[2][i] = f64::NAN;
            }
        }
        let (mut fe, mut se, mut ge) = (self.fast_ema, self.slow_ema, self.sig_ema);
        let (kf1, ks1, kg1) = (1.0 - kf, 1.0 - ks, 1.0 - kg);
        let (kf2, ks2, kg2) = (kf1 * kf1, ks1 * ks1, kg1 * kg1);
        let (o0, rest) = out.split_at_mut(1);
        let (o1, o2) = rest.split_at_mut(1);
        let (o0, o1, o2) = (&mut *o0[0], &mut *o1[0], &mut *o2[0]);
        // one pair of bars from (fe, se, ge) at its start: both bars' values
        let step2 = |fe: f64, se: f64, ge: f64, v1: f64, v2: f64| {
            let (f1, f2) = pair(fe, kf1, kf2, v1 * kf, v2 * kf);
            let (s1, s2) = pair(se, ks1, ks2, v1 * ks, v2 * ks);
            let (l1, l2) = (f1 - s1, f2 - s2);
            let (g1, g2) = pair(ge, kg1, kg2, l1 * kg, l2 * kg);
            ((f1, s1, l1, g1), (f2, s2, l2, g2))
        };
        let mut i = mid;
        if self.mid_pair && i < hi {
            let (_, (f2, s2, l2, g2)) = step2(fe, se, ge, x[i - 1], x[i]);
            (o0[i], o1[i], o2[i]) = (l2, g2, l2 - g2);
            (fe, se, ge) = (f2, s2, g2);
            self.mid_pair = false;
            i += 1;
        }
        while i + 1 < hi {
            let ((_, _, l1, g1), (f2, s2, l2, g2)) = step2(fe, se, ge, x[i], x[i + 1]);
            (o0[i], o1[i], o2[i]) = (l1, g1, l1 - g1);
            (o0[i + 1], o1[i + 1], o2[i + 1]) = (l2, g2, l2 - g2);
            (fe, se, ge) = (f2, s2, g2);
            i += 2;
        }
        if i < hi {
            let v = x[i];
            let (f1, s1) = (fe * kf1 + v * kf, se * ks1 + v * ks);
            let l1 = f1 - s1;
            let g1 = ge * kg1 + l1 * kg;
            (o0[i], o1[i], o2[i]) = (l1, g1, l1 - g1);
            self.mid_pair = true;
        }
        self.fast_ema = fe;
        self.slow_ema = se;
        self.sig_ema = ge;
    }
}

/// Runs one kernel over all rows into freshly allocated outputs.
pub fn run_alone(k: &mut dyn Kernel, n: usize) -> Vec<Vec<f64>> {
    let mut outs: Vec<Vec<f64>> = (0..k.n_outputs()).map(|_| vec![0.0; n]).collect();
    {
        let mut views: Vec<&mut [f64]> = outs.iter_mut().map(|v| v.as_mut_slice()).collect();
        k.run(0, n, &mut views);
    }
    outs
}

#[cfg(test)]
mod tests {
    use super::*;

    fn series(n: usize) -> Vec<f64> {
        let mut s = 0x1234_5678u64;
        let mut v = 100.0;
        (0..n)
            .map(|_| {
                s ^= s << 13;
                s ^= s >> 7;
                s ^= s << 17;
                v += (s % 1000) as f64 / 1000.0 - 0.5;
                v
            })
            .collect()
    }

    #[test]
    fn sma_and_leading_nans() {
        let x = [f64::NAN, 1.0, 2.0, 3.0, 4.0];
        let o = run_alone(&mut Sma::new(&x, 2), x.len());
        assert!(o[0][0].is_nan() && o[0][1].is_nan());
        assert_eq!(&o[0][2..], &[1.5, 2.5, 3.5]);
    }

    #[test]
    fn blockwise_equals_whole() {
        let x = series(1000);
        let h: Vec<f64> = x.iter().map(|v| v + 0.7).collect();
        let l: Vec<f64> = x.iter().map(|v| v - 0.4).collect();
        let make = |x: &'static [f64]| -> Vec<Box<dyn Kernel>> {
            vec![Box::new(Sma::new(x, 20)), Box::new(Ema::new(x, 12)), Box::new(Rsi::new(x, 14)),
                 Box::new(Stddev::new(x, 20)), Box::new(Zscore::new(x, 20)), Box::new(Roc::new(x, 10, true)),
                 Box::new(Macd::new(x, 12, 26, 9))]
        };
        let xs: &'static [f64] = Box::leak(x.clone().into_boxed_slice());
        for (mut a, mut b) in make(xs).into_iter().zip(make(xs)) {
            let whole = run_alone(a.as_mut(), xs.len());
            let mut outs: Vec<Vec<f64>> = (0..b.n_outputs()).map(|_| vec![0.0; xs.len()]).collect();
            let mut views: Vec<&mut [f64]> = outs.iter_mut().map(|v| v.as_mut_slice()).collect();
            // uneven blocks: pairs of bars split every way
            let (mut lo, mut k) = (0, 0);
            while lo < xs.len() {
                let hi = (lo + [7, 2, 1, 3][k % 4]).min(xs.len());
                b.run(lo, hi, &mut views);
                lo = hi;
                k += 1;
            }
            for (w, o) in whole.iter().zip(&outs) {
                for (p, q) in w.iter().zip(o) {
                    assert!(p.to_bits() == q.to_bits(), "{p} != {q}");
                }
            }
        }
        for p in [1, 2, 14] {
            let whole = run_alone(&mut Atr::new(&h, &l, &x, p), x.len());
            let mut b = Atr::new(&h, &l, &x, p);
            let mut out = vec![0.0; x.len()];
            let mut lo = 0;
            let mut k = 0;
            while lo < x.len() {
                let hi = (lo + [7, 2, 1, 3][k % 4]).min(x.len());
                b.run(lo, hi, &mut [out.as_mut_slice()]);
                lo = hi;
                k += 1;
            }
            assert!(whole[0].iter().zip(&out).all(|(p, q)| p.to_bits() == q.to_bits()), "atr {p}");
        }
        let mut a = Atr::new(&h, &l, &x, 14);
        let whole = run_alone(&mut a, x.len());
        assert!(whole[0][13].is_nan() && whole[0][14].is_finite());
    }

    #[test]
    fn stddev_is_population_and_accurate() {
        let x: Vec<f64> = (0..50).map(|i| 1e6 + (i % 3) as f64).collect();
        let o = run_alone(&mut Stddev::new(&x, 3), x.len());
        // window {0,1,2} + 1e6: population variance 2/3
        for v in &o[0][2..] {
            assert!((v - (2.0f64 / 3.0).sqrt()).abs() < 1e-9);
        }
    }

    #[test]
    fn macd_lookback() {
        let x = series(100);
        let o = run_alone(&mut Macd::new(&x, 12, 26, 9), x.len());
        assert!(o[0][32].is_nan());
        assert!(o[0][33].is_finite() && o[1][33].is_finite());
        assert_eq!(Macd::lookback(12, 26, 9), 33);
    }
}
