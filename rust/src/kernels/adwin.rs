//! ADWIN (Bifet & Gavaldà 2007, ADWIN2 bucket compression) with the exact arithmetic and
//! control flow of `river.drift.ADWIN`, so detections land on the same indices.
//!
//! River semantics kept here: checks run every `clock` updates once the window is wider than
//! `grace_period`; after a detection, the *next* update starts from a fresh, empty detector.

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

/// One level of the exponential histogram: entries each summarising 2^level values, oldest
/// first, held in a fixed ring of `max_buckets + 1` slots (merging drops the two oldest).
#[derive(Clone, Debug)]
struct Row {
    totals: Vec<f64>,
    variances: Vec<f64>,
    head: usize,
    len: usize,
}

impl Row {
    fn new(cap: usize) -> Self {
        Row { totals: vec![0.0; cap], variances: vec![0.0; cap], head: 0, len: 0 }
    }
    #[inline]
    fn slot(&self, k: usize) -> usize {
        let i = self.head + k;
        if i >= self.totals.len() {
            i - self.totals.len()
        } else {
            i
        }
    }
    #[inline]
    fn total(&self, k: usize) -> f64 {
        self.totals[self.slot(k)]
    }
    #[inline]
    fn variance(&self, k: usize) -> f64 {
        self.variances[self.slot(k)]
    }
    #[inline]
    fn push(&mut self, t: f64, v: f64) {
        let i = self.slot(self.len);
        self.totals[i] = t;
        self.variances[i] = v;
        self.len += 1;
    }
    #[inline]
    fn drop_front(&mut self, n: usize) {
        self.head = self.slot(n);
        self.len -= n;
    }
    fn logical(&self) -> (Vec<f64>, Vec<f64>) {
        ((0..self.len).map(|k| self.total(k)).collect(), (0..self.len).map(|k| self.variance(k)).collect())
    }
}

impl PartialEq for Row {
    fn eq(&self, other: &Self) -> bool {
        self.logical() == other.logical()
    }
}

#[derive(Clone, Debug, PartialEq)]
pub struct Adwin {
    pub params: AdwinParams,
    total: f64,
    variance: f64,
    width: f64,
    tick: i64,
    /// tick % clock, kept incrementally (no division per update)
    phase: i64,
    rows: Vec<Row>,
    /// The previous update detected drift: the next update resets first (river's behaviour).
    pub drift_detected: bool,
    pub n_detections: u64,
}

impl Adwin {
    pub fn new(params: AdwinParams) -> Result<Self, String> {
        params.validate()?;
        let params_cap = params.max_buckets + 1;
        Ok(Adwin {
            params,
            total: 0.0,
            variance: 0.0,
            width: 0.0,
            tick: 0,
            phase: 0,
            rows: vec![Row::new(params_cap)],
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
        self.rows.push(Row::new(self.params.max_buckets + 1));
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
        self.insert(x);
        let d = self.detect();
        self.drift_detected = d;
        if d {
            self.n_detections += 1;
        }
        d
    }

    /// Indices (0-based within `xs`) at which drift was detected.
    pub fn update_many(&mut self, xs: &[f64]) -> Vec<i64> {
        let mut out = Vec::new();
        for (i, &x) in xs.iter().enumerate() {
            if self.update(x) {
                out.push(i as i64);
            }
        }
        out
    }

    #[inline(always)]
    fn insert(&mut self, x: f64) {
        self.rows[0].push(x, 0.0);
        self.width += 1.0;
        let mut inc = 0.0;
        if self.width > 1.0 {
            let d = x - self.total / (self.width - 1.0);
            inc = (self.width - 1.0) * d * d / self.width;
        }
        self.variance += inc;
        self.total += x;
        self.compress();
    }

    #[inline(always)]
    fn compress(&mut self) {
        let cap = self.params.max_buckets + 1;
        let mut level = 0usize;
        while self.rows[level].len == cap {
            // 2^level is a power of two: multiplying by its reciprocal is the exact division
            let inv = 1.0 / (1u64 << level) as f64;
            let n1 = (1u64 << level) as f64;
            let row = &self.rows[level];
            let (t0, t1) = (row.total(0), row.total(1));
            let (v0, v1) = (row.variance(0), row.variance(1));
            let mu1 = t0 * inv;
            let mu2 = t1 * inv;
            let merged_total = t0 + t1;
            let merged_var = v0 + v1 + n1 * 0.5 * (mu1 - mu2) * (mu1 - mu2);
            if level + 1 == self.rows.len() {
                self.rows.push(Row::new(cap));
            }
            self.rows[level + 1].push(merged_total, merged_var);
            self.rows[level].drop_front(2);
            if self.rows[level + 1].len <= self.params.max_buckets {
                break;
            }
            level += 1;
        }
    }

    /// Drops the oldest entry (in the highest level) and updates the window statistics.
    fn drop_oldest(&mut self) {
        // With max_buckets == 1 merges can leave inner levels empty; river indexes such a level
        // and panics. Empty top levels hold no data, so they are skipped here.
        while self.rows.len() > 1 && self.rows[self.rows.len() - 1].len == 0 {
            self.rows.pop();
        }
        let last = self.rows.len() - 1;
        if self.rows[last].len == 0 {
            return;
        }
        let n = (1u64 << last) as f64;
        let u = self.rows[last].total(0);
        let v = self.rows[last].variance(0);
        let mu = u / n;
        self.width -= n;
        self.total -= u;
        let mu_window = self.total / self.width;
        let inc = v + n * self.width * (mu - mu_window) * (mu - mu_window) / (n + self.width);
        self.variance -= inc;
        self.rows[last].drop_front(1);
        while self.rows.len() > 1 && self.rows[self.rows.len() - 1].len == 0 {
            self.rows.pop();
        }
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

    #[inline(always)]
    fn detect(&mut self) -> bool {
        self.tick += 1;
        self.phase += 1;
        if self.phase == self.params.clock {
            self.phase = 0;
        }
        if self.phase != 0 || self.width <= self.params.grace_period as f64 {
            return false;
        }
        self.scan()
    }

    /// The periodic check: every split of the window into old/new parts, oldest first.
    #[inline(never)]
    fn scan(&mut self) -> bool {
        let mut detected = false;
        let mwl = self.params.min_window_length as f64;
        loop {
            let mut shrink = false;
            let mut n0 = 0.0f64;
            let mut n1 = self.width;
            let mut u0 = 0.0f64;
            let mut u1 = self.total;
            let delta_prime = (2.0 * self.width.ln() / self.params.delta).ln();
            let var_w = self.variance / self.width;
            // Cheap exact-safe filter: epsilon is smallest when n0 == n1, so a candidate whose
            // mean gap is clearly below that floor cannot cut; only the others get the exact
            // (division and sqrt) test, so decisions are identical to the unfiltered scan.
            let m_min = 4.0 / (self.width - 2.0 * mwl + 2.0);
            let eps_floor = if m_min > 0.0 && m_min.is_finite() && delta_prime > 0.0 {
                0.999 * ((2.0 * m_min * var_w * delta_prime).sqrt() + 2.0 / 3.0 * delta_prime * m_min)
            } else {
                0.0
            };
            'scan: for level in (0..self.rows.len()).rev() {
                let size = (1u64 << level) as f64;
                let len = self.rows[level].len;
                for k in 0..len {
                    n0 += size;
                    n1 -= size;
                    let t = self.rows[level].total(k);
                    u0 += t;
                    u1 -= t;
                    if level == 0 && k == len - 1 {
                        break 'scan;
                    }
                    if n1 < mwl || n0 < mwl {
                        continue;
                    }
                    let cross = u0 * n1 - u1 * n0;
                    let slack = 1e-9 * ((u0 * n1).abs() + (u1 * n0).abs());
                    if cross.abs() + slack < eps_floor * (n0 * n1) {
                        continue;
                    }
                    let delta_mean = (u0 / n0) - (u1 / n1);
                    if self.cut(n0, n1, delta_mean, delta_prime, var_w) {
                        shrink = true;
                        detected = true;
                        if self.width > 0.0 {
                            self.drop_oldest();
                            break 'scan;
                        }
                    }
                }
            }
            if !shrink {
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
        w.u64(self.rows.len() as u64);
        for row in &self.rows {
            let (t, v) = row.logical();
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
        let mut rows = Vec::with_capacity(n_rows as usize);
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
            let mut row = Row::new(params.max_buckets + 1);
            for (t, v) in totals.iter().zip(&variances) {
                row.push(*t, *v);
            }
            rows.push(row);
        }
        if counted != width || tick < 0 {
            return Err(r.err("window width does not match its buckets"));
        }
        r.finish()?;
        let phase = tick % params.clock;
        Ok(Adwin { params, total, variance, width, tick, phase, rows, drift_detected, n_detections })
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
