//! Population Stability Index with reference-quantile bins.
//!
//! Edges are `numpy.quantile(reference, linspace(0, 1, bins + 1))` (method "linear") with the
//! outer edges replaced by -inf/+inf; counting follows `numpy.histogram` (bin i holds
//! e_i <= x < e_{i+1}; repeated edges give empty bins). Shares are clipped below at 1e-4 and
//! PSI = sum((q - p) * ln(q / p)) with p the reference and q the current shares.

use super::codec::{CodecError, Kind, Reader, Writer};

pub const SHARE_FLOOR: f64 = 1e-4;

/// numpy's `_lerp`: a + (b-a)*t, or b - (b-a)*(1-t) for t >= 0.5.
#[inline]
fn lerp(a: f64, b: f64, t: f64) -> f64 {
    let d = b - a;
    if t >= 0.5 {
        b - d * (1.0 - t)
    } else {
        a + d * t
    }
}

/// Inner edges e_1..e_{bins-1} as numpy computes them (linear method), from the order
/// statistics of `data` (`select::order_stats`: no sort, no full copy).
pub fn inner_edges(data: &[f64], bins: usize) -> Vec<f64> {
    let n = data.len();
    let step = 1.0 / bins as f64;
    // (virtual index, previous index, gamma) for each inner quantile, as numpy's linear method
    let mut plan: Vec<(usize, usize, f64)> = Vec::with_capacity(bins.saturating_sub(1));
    for i in 1..bins {
        let q = i as f64 * step;
        let vi = (n as f64 - 1.0) * q;
        if vi >= (n - 1) as f64 {
            plan.push((n - 1, n - 1, 0.0));
        } else {
            let prev = vi.floor();
            plan.push((prev as usize, prev as usize + 1, vi - prev));
        }
    }
    let ranks: Vec<usize> = plan.iter().flat_map(|&(a, b, _)| [a, b]).collect();
    let vals = super::select::order_stats(data, &ranks);
    plan.iter()
        .zip(vals.chunks_exact(2))
        .map(|(&(a, b, g), v)| if a == b { v[0] } else { lerp(v[0], v[1], g) })
        .collect()
}

/// Bin index of `x` under numpy histogram semantics with inner edges `edges`.
#[inline]
pub fn bin_of(edges: &[f64], x: f64) -> usize {
    // number of inner edges <= x (branch-free for the small edge counts used here)
    let mut c = 0usize;
    for &e in edges {
        c += (e <= x) as usize;
    }
    c
}

/// Adds the bin counts of `xs` to `counts` (len = edges + 1).
///
/// With few edges each value's bin is a branch-free count of compares, tallied into four
/// interleaved histograms so that runs of one bin do not wait on each other's increments.
pub fn count_into(edges: &[f64], xs: &[f64], counts: &mut [u64]) {
    if edges.len() <= 32 {
        let nb = counts.len();
        let mut tally = vec![0u64; 4 * nb];
        let mut quads = xs.chunks_exact(4);
        for q in &mut quads {
            for (lane, &x) in q.iter().enumerate() {
                tally[lane * nb + bin_of(edges, x)] += 1;
            }
        }
        for &x in quads.remainder() {
            tally[bin_of(edges, x)] += 1;
        }
        for (k, c) in counts.iter_mut().enumerate() {
            *c += (0..4).map(|lane| tally[lane * nb + k]).sum::<u64>();
        }
    } else {
        for &x in xs {
            counts[edges.partition_point(|&e| e <= x)] += 1;
        }
    }
}

pub fn shares(counts: &[u64], total: u64) -> Vec<f64> {
    counts
        .iter()
        .map(|&c| {
            let s = c as f64 / total as f64;
            if s < SHARE_FLOOR {
                SHARE_FLOOR
            } else {
                s
            }
        })
        .collect()
}

pub fn psi_from_shares(p: &[f64], q: &[f64]) -> f64 {
    p.iter().zip(q).fold(0.0, |acc, (&pi, &qi)| acc + (qi - pi) * (qi / pi).ln())
}

/// A reference fitted once; current batches accumulate into bin counts.
#[derive(Clone, Debug, PartialEq)]
pub struct PsiMonitor {
    pub bins: usize,
    pub edges: Vec<f64>,
    pub ref_counts: Vec<u64>,
    pub ref_total: u64,
    pub counts: Vec<u64>,
    pub total: u64,
}

impl PsiMonitor {
    /// `reference` must be non-empty and free of NaN (checked by the caller).
    pub fn fit(reference: &[f64], bins: usize) -> PsiMonitor {
        let edges = inner_edges(reference, bins);
        let mut ref_counts = vec![0u64; bins];
        count_into(&edges, reference, &mut ref_counts);
        PsiMonitor {
            bins,
            edges,
            ref_counts,
            ref_total: reference.len() as u64,
            counts: vec![0; bins],
            total: 0,
        }
    }

    pub fn update(&mut self, batch: &[f64]) {
        count_into(&self.edges, batch, &mut self.counts);
        self.total += batch.len() as u64;
    }

    pub fn reset(&mut self) {
        self.counts.iter_mut().for_each(|c| *c = 0);
        self.total = 0;
    }

    /// PSI of everything seen since the last reset; NaN before any data.
    pub fn value(&self) -> f64 {
        if self.total == 0 {
            return f64::NAN;
        }
        psi_from_shares(&shares(&self.ref_counts, self.ref_total), &shares(&self.counts, self.total))
    }

    pub fn to_bytes(&self) -> Vec<u8> {
        let mut w = Writer::new(Kind::PsiMonitor);
        w.u64(self.bins as u64).f64s(&self.edges).u64(self.ref_total).u64(self.total);
        for &c in &self.ref_counts {
            w.u64(c);
        }
        for &c in &self.counts {
            w.u64(c);
        }
        w.finish()
    }

    pub fn from_bytes(data: &[u8]) -> Result<Self, CodecError> {
        let mut r = Reader::new(data, Kind::PsiMonitor)?;
        let bins = r.u64()?;
        if !(2..=1_000_000).contains(&bins) {
            return Err(r.err(&format!("invalid bin count {bins}")));
        }
        let bins = bins as usize;
        let edges = r.f64s()?;
        if edges.len() != bins - 1 || edges.iter().any(|e| e.is_nan()) || edges.windows(2).any(|w| w[0] > w[1]) {
            return Err(r.err("bin edges are inconsistent"));
        }
        let ref_total = r.u64()?;
        let total = r.u64()?;
        let mut ref_counts = Vec::with_capacity(bins);
        for _ in 0..bins {
            ref_counts.push(r.u64()?);
        }
        let mut counts = Vec::with_capacity(bins);
        for _ in 0..bins {
            counts.push(r.u64()?);
        }
        let sum = |v: &[u64]| v.iter().try_fold(0u64, |a, &b| a.checked_add(b));
        if sum(&ref_counts) != Some(ref_total) || sum(&counts) != Some(total) || ref_total == 0 {
            return Err(r.err("bin counts do not add up to their totals"));
        }
        r.finish()?;
        Ok(PsiMonitor { bins, edges, ref_counts, ref_total, counts, total })
    }
}

/// One-shot PSI of `current` against `reference`.
pub fn psi(reference: &[f64], current: &[f64], bins: usize) -> f64 {
    let mut m = PsiMonitor::fit(reference, bins);
    m.update(current);
    m.value()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn edges_match_numpy_linear_quantiles() {
        // numpy.quantile(arange(11.0), [0.25, 0.5, 0.75]) == [2.5, 5.0, 7.5]
        let d: Vec<f64> = (0..11).rev().map(|i| i as f64).collect();
        assert_eq!(inner_edges(&d, 4), vec![2.5, 5.0, 7.5]);
    }

    #[test]
    fn histogram_semantics_with_repeated_edges() {
        let edges = [1.0, 1.0, 2.0];
        assert_eq!(bin_of(&edges, 0.5), 0);
        assert_eq!(bin_of(&edges, 1.0), 2); // value on a repeated edge goes to the last such bin
        assert_eq!(bin_of(&edges, 2.0), 3);
        assert_eq!(bin_of(&edges, f64::INFINITY), 3);
    }

    #[test]
    fn identical_samples_have_zero_psi() {
        let x: Vec<f64> = (0..1000).map(|i| ((i * 37) % 101) as f64).collect();
        assert_eq!(psi(&x, &x, 10), 0.0);
        let shifted: Vec<f64> = x.iter().map(|v| v + 30.0).collect();
        assert!(psi(&x, &shifted, 10) > 0.5);
    }

    #[test]
    fn monitor_round_trip() {
        let x: Vec<f64> = (0..500).map(|i| (i as f64).sin()).collect();
        let mut m = PsiMonitor::fit(&x, 10);
        m.update(&x[..100]);
        let back = PsiMonitor::from_bytes(&m.to_bytes()).unwrap();
        assert_eq!(back, m);
        assert_eq!(back.value(), m.value());
    }
}
