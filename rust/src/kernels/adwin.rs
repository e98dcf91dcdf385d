//! ADWIN (Bifet & Gavaldà 2007, ADWIN2 bucket compression) with the exact arithmetic and
//! control flow of `river.drift.ADWIN`, so detections land on the same indices.
//!
//! River semantics kept here: checks run every `clock` updates once the window is wider than
//! `grace_period`; after a detection, the *next* update starts from a fresh, empty detector.
//!
//! Speed without changing a single bit of river's arithmetic:
//! - `update_many` feeds the values between two checks as one run: the window statistics
//!   (whose per-value update holds two divisions) go through a tight loop of their own, so the
//!   divisions of successive values overlap in the pipeline instead of waiting on the bucket
//!   bookkeeping, and the bucket compression runs in a separate loop without them.
//! - Bucket levels live in two flat arrays (one ring of `max_buckets + 1` slots per level), so
//!   merging and scanning touch no per-level heap objects.
//! - The periodic scan lays every split out in arrays, keeping what it laid out for levels that
//!   did not change since the last scan (new values reach the lowest levels, which the walk
//!   visits last), then screens the splits eight at a time with a division-free, exact-safe
//!   bound (`Filter`); only splits the bound cannot rule out get river's exact test, with
//!   river's exact running sums.

use super::codec::{CodecError, Kind, Reader, Writer};

#[derive(Clone, Debug, PartialEq)]
pub struct AdwinParams {
    pub delta: f64,
    pub clock: i64,
    pub max_buckets: usize,
    pub min_window_length: i64,
    pub grace_period: i64,
}

impl AdwinParams {
    pub fn validate(&self) -> Result<(), String> {
        if !(self.delta > 0.0 && self.delta < 1.0) {
            return Err(format!("ADWIN delta must be in (0, 1), got {}", self.delta));
        }
        if self.clock < 1 {
            return Err(format!("ADWIN clock must be >= 1, got {}", self.clock));
        }
        if self.max_buckets < 1 || self.max_buckets > 10_000 {
            return Err(format!("ADWIN max_buckets must be in [1, 10000], got {}", self.max_buckets));
        }
        if self.min_window_length < 1 {
            return Err(format!(
                "ADWIN min_window_length must be >= 1, got {}",
                self.min_window_length
            ));
        }
        if self.grace_period < 0 {
            return Err(format!("ADWIN grace_period must be >= 0, got {}", self.grace_period));
        }
        Ok(())
    }
}

/// The exponential histogram: level `l` holds entries each summarising 2^l values, oldest
/// first, in a ring of `cap` slots (a power of two with room for `max_buckets` entries plus
/// one run of pushes) at `l * cap` of the flat arrays. Slots outside a level's entries hold
/// stale values that nothing reads.
#[derive(Clone, Debug)]
struct Levels {
    cap: usize,
    mask: usize,
    totals: Vec<f64>,
    variances: Vec<f64>,
    head: Vec<usize>,
    len: Vec<usize>,
    /// 1 + the highest level changed since the scan last laid out the splits (0: none; `ALL`:
    /// the layout itself moved); levels above it still hold what that layout read. Not state.
    dirty: usize,
}

const ALL: usize = usize::MAX;

impl Levels {
    fn new(max_buckets: usize) -> Self {
        let cap = (max_buckets + 1 + RUN).next_power_of_two();
        let mut l = Levels {
            cap,
            mask: cap - 1,
            totals: Vec::new(),
            variances: Vec::new(),
            head: Vec::new(),
            len: Vec::new(),
            dirty: ALL,
        };
        l.add_level();
        l
    }
    #[inline(always)]
    fn touch(&mut self, level: usize) {
        if self.dirty != ALL && level + 1 > self.dirty {
            self.dirty = level + 1;
        }
    }
    fn clear(&mut self) {
        self.dirty = ALL;
        self.totals.truncate(self.cap);
        self.variances.truncate(self.cap);
        self.head.truncate(1);
        self.len.truncate(1);
        self.head[0] = 0;
        self.len[0] = 0;
    }
    #[inline]
    fn n_levels(&self) -> usize {
        self.head.len()
    }
    fn add_level(&mut self) {
        self.dirty = ALL;
        self.totals.resize(self.totals.len() + self.cap, 0.0);
        self.variances.resize(self.variances.len() + self.cap, 0.0);
        self.head.push(0);
        self.len.push(0);
    }
    fn pop_level(&mut self) {
        self.dirty = ALL;
        let n = self.n_levels() - 1;
        self.totals.truncate(n * self.cap);
        self.variances.truncate(n * self.cap);
        self.head.pop();
        self.len.pop();
    }
    /// Flat index of the `k`-th oldest entry of `level` (k < cap).
    #[inline(always)]
    fn at(&self, level: usize, k: usize) -> usize {
        level * self.cap + ((self.head[level] + k) & self.mask)
    }
    #[inline(always)]
    fn push(&mut self, level: usize, t: f64, v: f64) {
        self.touch(level);
        let i = self.at(level, self.len[level]);
        self.totals[i] = t;
        self.variances[i] = v;
        self.len[level] += 1;
    }
    #[inline(always)]
    fn drop_front(&mut self, level: usize, n: usize) {
        // the oldest entries of a level: everything after them in the walk moves
        if level + 1 == self.n_levels() {
            self.dirty = ALL;
        }
        self.touch(level);
        self.head[level] = (self.head[level] + n) & self.mask;
        self.len[level] -= n;
    }
    /// Appends raw values (variance 0) to level 0, which has room for them.
    #[inline(always)]
    fn push_values(&mut self, xs: &[f64]) {
        self.touch(0);
        let start = (self.head[0] + self.len[0]) & self.mask;
        let first = xs.len().min(self.cap - start);
        let (a, b) = xs.split_at(first);
        self.totals[start..start + a.len()].copy_from_slice(a);
        self.variances[start..start + a.len()].fill(0.0);
        self.totals[..b.len()].copy_from_slice(b);
        self.variances[..b.len()].fill(0.0);
        self.len[0] += xs.len();
    }
    /// Oldest-first (totals, variances) of one level.
    fn logical(&self, level: usize) -> (Vec<f64>, Vec<f64>) {
        let idx: Vec<usize> = (0..self.len[level]).map(|k| self.at(level, k)).collect();
        (idx.iter().map(|&i| self.totals[i]).collect(), idx.iter().map(|&i| self.variances[i]).collect())
    }
    /// Level `level`'s totals, oldest first, as at most two contiguous slices.
    #[inline(always)]
    fn total_slices(&self, level: usize) -> (&[f64], &[f64]) {
        let base = level * self.cap;
        let ring = &self.totals[base..base + self.cap];
        let (h, n) = (self.head[level], self.len[level]);
        if h + n <= self.cap {
            (&ring[h..h + n], &[])
        } else {
            (&ring[h..], &ring[..h + n - self.cap])
        }
    }
}

impl PartialEq for Levels {
    fn eq(&self, other: &Self) -> bool {
        self.n_levels() == other.n_levels() && (0..self.n_levels()).all(|l| self.logical(l) == other.logical(l))
    }
}

/// Values fed to the window statistics per tight-loop run (a scan never lies inside one).
const RUN: usize = 64;

#[derive(Clone, Debug, PartialEq)]
pub struct Adwin {
    pub params: AdwinParams,
    total: f64,
    variance: f64,
    width: f64,
    tick: i64,
    /// tick % clock, kept incrementally (no division per update)
    phase: i64,
    rows: Levels,
    splits: Splits,
    /// The previous update detected drift: the next update resets first (river's behaviour).
    pub drift_detected: bool,
    pub n_detections: u64,
}

impl Adwin {
    pub fn new(params: AdwinParams) -> Result<Self, String> {
        params.validate()?;
        let rows = Levels::new(params.max_buckets);
        Ok(Adwin {
            params,
            total: 0.0,
            variance: 0.0,
            width: 0.0,
            tick: 0,
            phase: 0,
            rows,
            splits: Splits::default(),
            drift_detected: false,
            n_detections: 0,
        })
    }

    fn reset_window(&mut self) {
        self.total = 0.0;
        self.variance = 0.0;
        self.width = 0.0;
        self.tick = 0;
        self.phase = 0;
        self.rows.clear();
    }

    pub fn width(&self) -> f64 {
        self.width
    }
    pub fn total(&self) -> f64 {
        self.total
    }
    /// Sum of squared deviations inside the window (river's `variance`).
    pub fn variance(&self) -> f64 {
        self.variance
    }
    pub fn estimation(&self) -> f64 {
        if self.width == 0.0 {
            0.0
        } else {
            self.total / self.width
        }
    }

    /// Feeds one value; true when drift is detected on it.
    #[inline]
    pub fn update(&mut self, x: f64) -> bool {
        if self.drift_detected {
            self.reset_window();
        }
        self.stats(std::slice::from_ref(&x));
        self.buckets(std::slice::from_ref(&x));
        self.tick += 1;
        self.phase += 1;
        if self.phase == self.params.clock {
            self.phase = 0;
        }
        self.finish_update()
    }

    /// The check that closes an update: a scan when the clock says so.
    #[inline(always)]
    fn finish_update(&mut self) -> bool {
        let d = self.phase == 0 && self.width > self.params.grace_period as f64 && self.scan();
        self.drift_detected = d;
        if d {
            self.n_detections += 1;
        }
        d
    }

    /// Indices (0-based within `xs`) at which drift was detected; identical to calling
    /// `update` on each value in turn.
    pub fn update_many(&mut self, xs: &[f64]) -> Vec<i64> {
        #[cfg(target_arch = "x86_64")]
        if std::arch::is_x86_feature_detected!("avx2") {
            // SAFETY: the CPU supports AVX2 (checked just above)
            return unsafe { self.update_many_avx2(xs) };
        }
        self.update_many_impl(xs)
    }

    /// `update_many` compiled for AVX2 (wider vectors for the statistics and merge loops). The
    /// arithmetic is the same IEEE operations, lane by lane (Rust never fuses a multiply and an
    /// add on its own), so the results are bit for bit those of the baseline build.
    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx2")]
    unsafe fn update_many_avx2(&mut self, xs: &[f64]) -> Vec<i64> {
        self.update_many_impl(xs)
    }

    #[inline(always)]
    fn update_many_impl(&mut self, xs: &[f64]) -> Vec<i64> {
        let mut out = Vec::new();
        let clock = self.params.clock;
        let mut i = 0usize;
        while i < xs.len() {
            if self.drift_detected {
                self.reset_window();
            }
            // values up to and including the next clock tick: no scan happens inside them
            let to_tick = (clock - self.phase) as u64;
            let m = (xs.len() - i).min(to_tick.min(usize::MAX as u64) as usize);
            let run = &xs[i..i + m];
            for part in run.chunks(RUN) {
                self.stats(part);
                self.buckets(part);
            }
            self.tick += m as i64;
            self.phase += m as i64;
            if self.phase == clock {
                self.phase = 0;
            }
            i += m;
            if self.finish_update() {
                out.push((i - 1) as i64);
            }
        }
        out
    }

    /// River's window statistics for each value of `xs` in turn (`xs.len() <= RUN`): width,
    /// then the variance increment from the previous mean, then the total.
    #[inline(always)]
    fn stats(&mut self, xs: &[f64]) {
        debug_assert!(xs.len() <= RUN);
        // The running totals before each value: a chain of additions, cheap; the increments
        // (two divisions each) then depend only on these and run side by side.
        let mut before = [0.0f64; RUN];
        let mut total = self.total;
        for (b, &x) in before.iter_mut().zip(xs) {
            *b = total;
            total += x;
        }
        let mut incs = [0.0f64; RUN];
        let w0 = self.width;
        for (j, ((inc, &x), &t)) in incs.iter_mut().zip(xs).zip(&before).enumerate() {
            let width = w0 + (j + 1) as f64;
            let wm1 = width - 1.0;
            let d = x - t / wm1;
            let v = wm1 * d * d / width;
            *inc = if width > 1.0 { v } else { 0.0 };
        }
        let mut variance = self.variance;
        for &inc in &incs[..xs.len()] {
            variance += inc;
        }
        self.variance = variance;
        self.total = total;
        self.width = w0 + xs.len() as f64;
    }

    /// Pushes the values of `xs` (at most `RUN`) into level 0, then compresses.
    ///
    /// River merges the two oldest entries of a level as soon as it holds `max_buckets + 1`.
    /// Deferring the merges to the end of a run (no scan happens inside one) merges the same
    /// pairs, in the same per-level order, into the same final state: a level's entries form a
    /// queue, the k-th merge always takes its entries 2k-1 and 2k, and the number of merges a
    /// level makes, ceil((len - max_buckets) / 2), depends only on how many entries reach it.
    #[inline(always)]
    fn buckets(&mut self, xs: &[f64]) {
        debug_assert!(xs.len() <= RUN);
        self.rows.push_values(xs);
        if self.rows.len[0] > self.params.max_buckets {
            self.compress();
        }
    }

    /// Merges the oldest pairs of each over-full level into the next one, lowest level first.
    #[inline(always)]
    fn compress(&mut self) {
        let max_buckets = self.params.max_buckets;
        let mut level = 0usize;
        while self.rows.len[level] > max_buckets {
            let merges = (self.rows.len[level] - max_buckets + 1) / 2;
            // 2^level is a power of two: multiplying by its reciprocal is the exact division
            let inv = 1.0 / (1u64 << level) as f64;
            let n1 = (1u64 << level) as f64;
            if level + 1 == self.rows.n_levels() {
                self.rows.add_level();
            }
            let cap = self.rows.cap;
            let mask = self.rows.mask;
            let (h, tail) = (self.rows.head[level], self.rows.head[level + 1] + self.rows.len[level + 1]);
            let (lo_t, hi_t) = self.rows.totals[level * cap..].split_at_mut(cap);
            let (lo_v, hi_v) = self.rows.variances[level * cap..].split_at_mut(cap);
            let (src_t, src_v) = (&lo_t[..mask + 1], &lo_v[..mask + 1]);
            let (dst_t, dst_v) = (&mut hi_t[..mask + 1], &mut hi_v[..mask + 1]);
            let merge = |t0: f64, t1: f64, v0: f64, v1: f64| {
                let mu1 = t0 * inv;
                let mu2 = t1 * inv;
                (t0 + t1, v0 + v1 + n1 * 0.5 * (mu1 - mu2) * (mu1 - mu2))
            };
            let (h, tail) = (h & mask, tail & mask);
            if h + 2 * merges <= cap && tail + merges <= cap {
                // neither ring wraps here: plain slices, which the compiler vectorises
                let (st, sv) = (&src_t[h..h + 2 * merges], &src_v[h..h + 2 * merges]);
                let (dt, dv) = (&mut dst_t[tail..tail + merges], &mut dst_v[tail..tail + merges]);
                for (((t, v), ot), ov) in st.chunks_exact(2).zip(sv.chunks_exact(2)).zip(dt).zip(dv) {
                    (*ot, *ov) = merge(t[0], t[1], v[0], v[1]);
                }
            } else {
                for j in 0..merges {
                    let (i0, i1) = ((h + 2 * j) & mask, (h + 2 * j + 1) & mask);
                    let o = (tail + j) & mask;
                    (dst_t[o], dst_v[o]) = merge(src_t[i0], src_t[i1], src_v[i0], src_v[i1]);
                }
            }
            self.rows.len[level + 1] += merges;
            self.rows.touch(level + 1);
            self.rows.drop_front(level, 2 * merges);
            level += 1;
        }
    }

    fn pop_empty_top_levels(&mut self) {
        while self.rows.n_levels() > 1 && self.rows.len[self.rows.n_levels() - 1] == 0 {
            self.rows.pop_level();
        }
    }

    /// Drops the oldest entry (in the highest level) and updates the window statistics.
    fn drop_oldest(&mut self) {
        // With max_buckets == 1 merges can leave inner levels empty; river indexes such a level
        // and panics. Empty top levels hold no data, so they are skipped here.
        self.pop_empty_top_levels();
        let last = self.rows.n_levels() - 1;
        if self.rows.len[last] == 0 {
            return;
        }
        let n = (1u64 << last) as f64;
        let i = self.rows.at(last, 0);
        let u = self.rows.totals[i];
        let v = self.rows.variances[i];
        let mu = u / n;
        self.width -= n;
        self.total -= u;
        let mu_window = self.total / self.width;
        let inc = v + n * self.width * (mu - mu_window) * (mu - mu_window) / (n + self.width);
        self.variance -= inc;
        self.rows.drop_front(last, 1);
        self.pop_empty_top_levels();
    }

    /// River's cut test. `delta_prime` and `var_w` (variance / width) depend only on the window,
    /// so the caller computes them once per scan: the same values, bit for bit.
    #[inline]
    fn cut(&self, n0: f64, n1: f64, delta_mean: f64, delta_prime: f64, var_w: f64) -> bool {
        let mwl = self.params.min_window_length as f64;
        let m_recip = 1.0 / (n0 - mwl + 1.0) + 1.0 / (n1 - mwl + 1.0);
        let epsilon = (2.0 * m_recip * var_w * delta_prime).sqrt() + 2.0 / 3.0 * delta_prime * m_recip;
        delta_mean.abs() > epsilon
    }

    /// The periodic check: every split of the window into old/new parts, oldest first; the
    /// first split that river's test cuts drops the oldest entry, and the check repeats.
    ///
    /// Done in two passes: the running sizes and sums of every split are laid out first (the
    /// same additions, in the same order, as river's walk: the exact test needs these very
    /// values), then `Filter` screens all splits side by side (vectorised: no branch, no
    /// division), and only the splits it passes, in order, get river's exact test.
    #[inline(always)]
    fn scan(&mut self) -> bool {
        let mut detected = false;
        let mwl = self.params.min_window_length as f64;
        loop {
            let var_w = self.variance / self.width;
            // the screen may use a lower bound of delta_prime (it only lets more splits
            // through); river's exact value is computed once a split needs the exact test
            let dp_low = self.splits.delta_prime_lower(self.width, self.params.delta);
            self.splits.lay_out(&mut self.rows);
            let f = Filter::new(mwl, var_w, dp_low, self.width, self.total, self.splits.t.len());
            let mut delta_prime = None;
            let sp = &self.splits;
            let n = sp.n0.len();
            let mut cut = false;
            let mut start = 0;
            // river's u1 (total minus each boundary's t in turn), exactly, as far as needed
            let (mut u1, mut u1_at) = (self.total, 0usize);
            while start < n {
                let Some(k) = f.first_candidate(sp, start) else { break };
                while u1_at <= k {
                    u1 -= sp.t[u1_at];
                    u1_at += 1;
                }
                let (n0, u0) = (sp.n0[k], sp.u0[k]);
                let n1 = self.width - n0;
                let dp = *delta_prime.get_or_insert_with(|| delta_prime_of(self.width, self.params.delta));
                if self.cut(n0, n1, (u0 / n0) - (u1 / n1), dp, var_w) {
                    cut = true;
                    break;
                }
                start = k + 1;
            }
            if !cut {
                break;
            }
            detected = true;
            if self.width > 0.0 {
                self.drop_oldest();
            } else {
                break;
            }
        }
        detected
    }

    pub fn to_bytes(&self) -> Vec<u8> {
        let mut w = Writer::new(Kind::Adwin);
        let p = &self.params;
        w.f64(p.delta)
            .i64(p.clock)
            .u64(p.max_buckets as u64)
            .i64(p.min_window_length)
            .i64(p.grace_period);
        w.f64(self.total).f64(self.variance).f64(self.width).i64(self.tick);
        w.bool(self.drift_detected).u64(self.n_detections);
        w.u64(self.rows.n_levels() as u64);
        for level in 0..self.rows.n_levels() {
            let (t, v) = self.rows.logical(level);
            w.f64s(&t).f64s(&v);
        }
        w.finish()
    }

    pub fn from_bytes(data: &[u8]) -> Result<Self, CodecError> {
        let mut r = Reader::new(data, Kind::Adwin)?;
        let params = AdwinParams {
            delta: r.f64()?,
            clock: r.i64()?,
            max_buckets: r.u64()? as usize,
            min_window_length: r.i64()?,
            grace_period: r.i64()?,
        };
        params.validate().map_err(|e| r.err(&e))?;
        let total = r.f64()?;
        let variance = r.f64()?;
        let width = r.f64()?;
        let tick = r.i64()?;
        let drift_detected = r.bool()?;
        let n_detections = r.u64()?;
        let n_rows = r.u64()?;
        if n_rows == 0 || n_rows > 64 {
            return Err(r.err(&format!("invalid number of bucket levels {n_rows}")));
        }
        let mut rows = Levels::new(params.max_buckets);
        let mut counted = 0.0f64;
        for level in 0..n_rows as usize {
            let totals = r.f64s()?;
            let variances = r.f64s()?;
            if totals.len() != variances.len() || totals.len() > params.max_buckets {
                return Err(r.err(&format!("bucket level {level} has an invalid size")));
            }
            if level + 1 < n_rows as usize || n_rows == 1 {
                // inner levels may be empty; the top level must hold data unless it is the only one
            } else if totals.is_empty() {
                return Err(r.err("top bucket level is empty"));
            }
            counted += totals.len() as f64 * (1u64 << level) as f64;
            if level > 0 {
                rows.add_level();
            }
            for (t, v) in totals.iter().zip(&variances) {
                rows.push(level, *t, *v);
            }
        }
        if counted != width || tick < 0 {
            return Err(r.err("window width does not match its buckets"));
        }
        r.finish()?;
        let phase = tick % params.clock;
        Ok(Adwin {
            params,
            total,
            variance,
            width,
            tick,
            phase,
            rows,
            splits: Splits::default(),
            drift_detected,
            n_detections,
        })
    }
}

/// Every split of the window in river's walk order (levels from the highest, oldest data,
/// down; each level oldest first): the bucket total `t` at each boundary, the old part's size
/// `n0` and sum `u0` (river's running sum, exactly) and `a0`, the running sum of |t|.
///
/// Scratch reused between scans, not state. Between two scans new values only change the
/// lowest levels, and the walk visits those last: the entries laid out for the levels above
/// (`Levels::dirty`) are kept, so a scan re-adds only the tail of the walk.
#[derive(Clone, Debug, Default)]
struct Splits {
    t: Vec<f64>,
    n0: Vec<f64>,
    u0: Vec<f64>,
    a0: Vec<f64>,
    /// number of levels when laid out
    levels: usize,
    /// (width, delta_prime at that width) of the last exact computation
    dp_at: (f64, f64),
}

/// River's `delta_prime = ln(2 ln(width) / delta)`.
#[inline]
fn delta_prime_of(width: f64, delta: f64) -> f64 {
    (2.0 * width.ln() / delta).ln()
}

impl PartialEq for Splits {
    fn eq(&self, _: &Self) -> bool {
        true // scratch: never part of a detector's state
    }
}

impl Splits {
    /// A lower bound of `delta_prime_of(width, delta)`: the value at a width up to 1% smaller
    /// (delta_prime grows with the width), so the two logarithms run about once per 1% of
    /// growth instead of at every scan. Exact (recomputed) whenever it could be negative.
    #[inline(always)]
    fn delta_prime_lower(&mut self, width: f64, delta: f64) -> f64 {
        let (w, dp) = self.dp_at;
        if dp > 0.0 && width >= w && width <= w * 1.01 {
            return dp;
        }
        let dp = delta_prime_of(width, delta);
        self.dp_at = (width, dp);
        dp
    }

    /// Brings the layout up to date with `rows`, re-adding only what changed.
    #[inline(always)]
    fn lay_out(&mut self, rows: &mut Levels) {
        let n_levels = rows.n_levels();
        let from_level = if rows.dirty == ALL || self.levels != n_levels { n_levels } else { rows.dirty };
        let kept: usize = rows.len[from_level.min(n_levels)..].iter().sum();
        let m: usize = kept + rows.len[..from_level.min(n_levels)].iter().sum::<usize>();
        for v in [&mut self.t, &mut self.n0, &mut self.u0, &mut self.a0] {
            v.resize(m, 0.0);
        }
        let (mut n0, mut u0, mut a0) = if kept == 0 {
            (0.0f64, 0.0f64, 0.0f64)
        } else {
            (self.n0[kept - 1], self.u0[kept - 1], self.a0[kept - 1])
        };
        let mut k = kept;
        for level in (0..from_level.min(n_levels)).rev() {
            let size = (1u64 << level) as f64;
            let (a, b) = rows.total_slices(level);
            for part in [a, b] {
                let end = k + part.len();
                let out = self.t[k..end]
                    .iter_mut()
                    .zip(&mut self.n0[k..end])
                    .zip(&mut self.u0[k..end])
                    .zip(&mut self.a0[k..end]);
                for ((((ot, on), ou), oa), &t) in out.zip(part) {
                    n0 += size;
                    u0 += t;
                    a0 += t.abs();
                    (*ot, *on, *ou, *oa) = (t, n0, u0, a0);
                }
                k = end;
            }
        }
        rows.dirty = 0;
        self.levels = n_levels;
    }
}

/// Exact-safe pre-test of a split: false only where river's test provably cannot cut.
///
/// River cuts when |u0/n0 - u1/n1| > eps = sqrt(k_sqrt * m) + 2/3 * delta_prime * m with
/// k_sqrt = 2 var_w delta_prime, m = 1/a + 1/b = (a + b) / (a b), a = n0 - mwl + 1,
/// b = n1 - mwl + 1 (so a + b = width - 2 (mwl - 1) is fixed for a scan). As both terms are
/// non-negative, eps^2 >= k_sqrt m + k_lin m^2 with k_lin = (2/3 delta_prime)^2, so with
/// gap = |u0 n1 - u1 n0| (the mean difference times n0 n1) a split cannot cut when
///     (gap + slack)^2 (a b)^2 < 0.999 (n0 n1)^2 (k_sqrt (a + b) a b + k_lin (a + b)^2),
/// `slack` bounding the rounding of both `gap` and river's own difference of means by a wide
/// margin. No division, no square root. `delta_prime` may be any lower bound of river's (a
/// smaller bound only passes more splits).
///
/// The screen reads u1 as `total - u0` instead of river's running difference: by the classic
/// bound on recursive summation, both are within `4 (m + 2) 2^-53 (|total| + a0)` of the exact
/// sum (m boundaries, a0 = the running sum of |t|), and that bound, times n0, joins the slack.
/// A NaN or an overflowing left side passes a split on to the exact test; where the right side
/// could overflow, every split is passed on.
struct Filter {
    mwl: f64,
    c: f64,
    /// 0.999 k_sqrt (a + b)
    k1: f64,
    /// 0.999 k_lin (a + b)^2
    k2: f64,
    width: f64,
    total: f64,
    /// error bound factor of u1 = total - u0: 4 (m + 2) 2^-53
    rel: f64,
}

impl Filter {
    fn new(mwl: f64, var_w: f64, delta_prime: f64, width: f64, total: f64, m: usize) -> Self {
        let c = mwl - 1.0;
        let s = width - 2.0 * c;
        let (mut k1, mut k2) = (0.999 * 2.0 * var_w * delta_prime * s, 0.999 * 4.0 / 9.0 * delta_prime * delta_prime * s * s);
        // n0 n1 and a b are at most width^2: this bounds the right-hand side
        let w2 = width * width;
        let bound = 16.0 * w2 * w2 * (k1.abs() * w2 + k2.abs());
        if !bound.is_finite() {
            (k1, k2) = (f64::NAN, f64::NAN);
        }
        let rel = 4.0 * (m as f64 + 2.0) * f64::EPSILON / 2.0;
        Filter { mwl, c, k1, k2, width, total, rel }
    }

    /// Index of the first split at or after `start` that `may_cut`, screening eight at a time.
    #[inline(always)]
    fn first_candidate(&self, sp: &Splits, start: usize) -> Option<usize> {
        const LANES: usize = 8;
        let n = sp.n0.len();
        let chunks = sp.n0[start..]
            .chunks_exact(LANES)
            .zip(sp.u0[start..].chunks_exact(LANES))
            .zip(sp.a0[start..].chunks_exact(LANES));
        let mut i = start;
        for ((n0, u0), a0) in chunks {
            let mut any = false;
            for j in 0..LANES {
                any |= self.may_cut(n0[j], u0[j], a0[j]);
            }
            if any {
                break;
            }
            i += LANES;
        }
        (i..n).find(|&j| self.may_cut(sp.n0[j], sp.u0[j], sp.a0[j]))
    }

    /// Branch-free (so it vectorises); see the type's documentation.
    #[inline(always)]
    fn may_cut(&self, n0: f64, u0: f64, a0: f64) -> bool {
        let n1 = self.width - n0; // integers below 2^53: exact
        let u1 = self.total - u0;
        let long_enough = (n1 >= self.mwl) & (n0 >= self.mwl);
        let (p0, p1) = (u0 * n1, u1 * n0);
        let u1_err = self.rel * (self.total.abs() + a0) * n0;
        let gap = (p0 - p1).abs() + 1e-9 * (p0.abs() + p1.abs()) + 1.001 * u1_err;
        let ab = (n0 - self.c) * (n1 - self.c);
        let nn = n0 * n1;
        let g = gap * ab;
        long_enough & !(g * g < (nn * nn) * (self.k1 * ab + self.k2))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn default() -> Adwin {
        Adwin::new(AdwinParams {
            delta: 0.002,
            clock: 32,
            max_buckets: 5,
            min_window_length: 5,
            grace_period: 10,
        })
        .unwrap()
    }

    #[test]
    fn window_statistics() {
        let mut a = default();
        for v in [1.0, 2.0, 3.0, 4.0, 5.0] {
            assert!(!a.update(v));
        }
        assert_eq!(a.width(), 5.0);
        assert_eq!(a.total(), 15.0);
        assert!((a.variance() - 10.0).abs() < 1e-12);
    }

    #[test]
    fn constant_stream_never_drifts_and_shift_is_found() {
        let mut a = default();
        for _ in 0..5000 {
            assert!(!a.update(1.0));
        }
        let mut found = None;
        for i in 0..2000 {
            if a.update(if i % 2 == 0 { 9.0 } else { 11.0 }) {
                found = Some(i);
                break;
            }
        }
        assert!(found.is_some());
        // after a detection the next update starts from an empty window
        a.update(3.0);
        assert_eq!(a.width(), 1.0);
    }

    #[test]
    fn bytes_round_trip_continues_identically() {
        let xs: Vec<f64> = (0..3000).map(|i| if i < 1500 { (i % 7) as f64 } else { (i % 5) as f64 + 3.0 }).collect();
        let mut a = default();
        a.update_many(&xs[..1000]);
        let mut b = Adwin::from_bytes(&a.to_bytes()).unwrap();
        assert_eq!(a, b);
        assert_eq!(a.update_many(&xs[1000..]), b.update_many(&xs[1000..]));
    }

    #[test]
    fn batched_equals_per_value() {
        let xs: Vec<f64> = (0..20_000).map(|i| ((i * 7919) % 101) as f64 / 10.0 + if i > 7000 { 3.0 } else { 0.0 }).collect();
        for clock in [1, 5, 32] {
            let p = AdwinParams { delta: 0.01, clock, max_buckets: 5, min_window_length: 5, grace_period: 10 };
            let mut a = Adwin::new(p.clone()).unwrap();
            let mut b = Adwin::new(p).unwrap();
            let batched = a.update_many(&xs[..12_345]);
            let single: Vec<i64> = xs[..12_345].iter().enumerate().filter(|(_, &x)| b.update(x)).map(|(i, _)| i as i64).collect();
            assert_eq!(batched, single);
            assert!(!single.is_empty());
            assert_eq!(a, b);
            assert_eq!(a.to_bytes(), b.to_bytes());
        }
    }

    #[test]
    fn corrupted_bytes_are_rejected() {
        let a = default();
        let mut bytes = a.to_bytes();
        let n = bytes.len();
        bytes[n - 5] ^= 0xff;
        assert!(Adwin::from_bytes(&bytes).is_err());
    }
}
