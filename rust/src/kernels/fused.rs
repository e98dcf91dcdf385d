//! Fused multi-indicator pass: all indicators advance together over cache-sized row blocks,
//! so every input column is read from memory once, and independent indicators run on
//! separate threads when the input is large.

use super::ta::{Atr, Ema, Kernel, Macd, Roc, Rsi, Sma, Stddev, Zscore};

/// One indicator of a feature set (periods validated by the caller).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Indicator {
    Sma(usize),
    Ema(usize),
    Rsi(usize),
    Atr(usize),
    Stddev(usize),
    Roc(usize),
    Returns(usize),
    Zscore(usize),
    Macd(usize, usize, usize),
}

impl Indicator {
    pub fn n_outputs(&self) -> usize {
        match self {
            Indicator::Macd(..) => 3,
            _ => 1,
        }
    }
    pub fn needs_high_low(&self) -> bool {
        matches!(self, Indicator::Atr(_))
    }
    /// Builds the state machine over `x` (and high/low/close for ATR).
    pub fn kernel<'a>(&self, x: &'a [f64], high: &'a [f64], low: &'a [f64], close: &'a [f64]) -> Box<dyn Kernel + 'a> {
        match *self {
            Indicator::Sma(p) => Box::new(Sma::new(x, p)),
            Indicator::Ema(p) => Box::new(Ema::new(x, p)),
            Indicator::Rsi(p) => Box::new(Rsi::new(x, p)),
            Indicator::Atr(p) => Box::new(Atr::new(high, low, close, p)),
            Indicator::Stddev(p) => Box::new(Stddev::new(x, p)),
            Indicator::Roc(p) => Box::new(Roc::new(x, p, true)),
            Indicator::Returns(p) => Box::new(Roc::new(x, p, false)),
            Indicator::Zscore(p) => Box::new(Zscore::new(x, p)),
            Indicator::Macd(f, s, g) => Box::new(Macd::new(x, f, s, g)),
        }
    }
}

pub const MAX_PERIOD: i64 = 100_000;

pub fn check_period(name: &str, p: i64, min: i64) -> Result<usize, String> {
    if p < min || p > MAX_PERIOD {
        return Err(format!("{name} must be an integer in [{min}, {MAX_PERIOD}], got {p}"));
    }
    Ok(p as usize)
}

/// Parses one normalised spec `(kind, params)` into an indicator.
pub fn parse_indicator(kind: &str, params: &[i64]) -> Result<Indicator, String> {
    let one = |min: i64| -> Result<usize, String> {
        if params.len() != 1 {
            return Err(format!("{kind} takes exactly one period, got {} parameters", params.len()));
        }
        check_period(&format!("{kind} period"), params[0], min)
    };
    Ok(match kind {
        "sma" => Indicator::Sma(one(1)?),
        "ema" => Indicator::Ema(one(1)?),
        "rsi" => Indicator::Rsi(one(2)?),
        "atr" => Indicator::Atr(one(1)?),
        "stddev" => Indicator::Stddev(one(2)?),
        "roc" => Indicator::Roc(one(1)?),
        "returns" => Indicator::Returns(one(1)?),
        "zscore" => Indicator::Zscore(one(2)?),
        "macd" => {
            if params.len() != 3 {
                return Err(format!("macd takes (fast, slow, signal), got {} parameters", params.len()));
            }
            Indicator::Macd(
                check_period("macd fast", params[0], 2)?,
                check_period("macd slow", params[1], 2)?,
                check_period("macd signal", params[2], 1)?,
            )
        }
        other => {
            return Err(format!(
                "unknown indicator {other:?}; expected one of sma, ema, rsi, atr, stddev, roc, returns, zscore, macd"
            ))
        }
    })
}

pub struct Job<'a> {
    pub kernel: Box<dyn Kernel + 'a>,
    pub outs: Vec<&'a mut [f64]>,
}

const BLOCK: usize = 2048;

fn run_group(jobs: &mut [Job<'_>], n: usize) {
    let mut lo = 0;
    while lo < n {
        let hi = (lo + BLOCK).min(n);
        for job in jobs.iter_mut() {
            job.kernel.run(lo, hi, &mut job.outs);
        }
        lo = hi;
    }
}

/// Runs all jobs over rows 0..n, on up to `threads` threads (balanced by estimated cost).
pub fn run_jobs(mut jobs: Vec<Job<'_>>, n: usize, threads: usize) {
    let threads = threads.max(1).min(jobs.len().max(1));
    if threads == 1 || n < 100_000 {
        run_group(&mut jobs, n);
        return;
    }
    // greedy longest-processing-time assignment
    jobs.sort_by_key(|j| std::cmp::Reverse(j.kernel.cost()));
    let mut groups: Vec<Vec<Job<'_>>> = (0..threads).map(|_| Vec::new()).collect();
    let mut load = vec![0u32; threads];
    for job in jobs {
        let g = (0..threads).min_by_key(|&g| load[g]).unwrap_or(0);
        load[g] += job.kernel.cost();
        groups[g].push(job);
    }
    std::thread::scope(|s| {
        let mut rest = groups.into_iter();
        let first = rest.next();
        for mut g in rest {
            s.spawn(move || run_group(&mut g, n));
        }
        if let Some(mut g) = first {
            run_group(&mut g, n);
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kernels::ta::run_alone;

    #[test]
    fn fused_equals_separate() {
        let n = 250_000;
        let x: Vec<f64> = (0..n).map(|i| 100.0 + ((i * 31) % 97) as f64 * 0.1 + (i as f64 * 1e-3).sin()).collect();
        let h: Vec<f64> = x.iter().map(|v| v + 0.5).collect();
        let l: Vec<f64> = x.iter().map(|v| v - 0.5).collect();
        let set = [Indicator::Sma(20), Indicator::Ema(12), Indicator::Rsi(14), Indicator::Atr(14),
                   Indicator::Stddev(20), Indicator::Roc(10), Indicator::Zscore(30), Indicator::Macd(12, 26, 9)];
        let mut outs: Vec<Vec<Vec<f64>>> = set.iter().map(|s| vec![vec![0.0; n]; s.n_outputs()]).collect();
        let jobs: Vec<Job> = set
            .iter()
            .zip(outs.iter_mut())
            .map(|(s, o)| Job { kernel: s.kernel(&x, &h, &l, &x), outs: o.iter_mut().map(|v| v.as_mut_slice()).collect() })
            .collect();
        run_jobs(jobs, n, 2);
        for (s, o) in set.iter().zip(&outs) {
            let alone = run_alone(s.kernel(&x, &h, &l, &x).as_mut(), n);
            for (a, b) in alone.iter().zip(o) {
                assert!(a.iter().zip(b).all(|(p, q)| p.to_bits() == q.to_bits()), "{s:?}");
            }
        }
    }
}
