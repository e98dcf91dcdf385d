//! Running moments (Welford), mergeable with Chan et al.'s pairwise update.

use super::codec::{CodecError, Kind, Reader, Writer};

#[derive(Clone, Debug, PartialEq)]
pub struct Welford {
    pub count: u64,
    pub mean: f64,
    pub m2: f64,
    pub min: f64,
    pub max: f64,
}

impl Default for Welford {
    fn default() -> Self {
        Self::new()
    }
}

impl Welford {
    pub fn new() -> Self {
        Welford { count: 0, mean: 0.0, m2: 0.0, min: f64::INFINITY, max: f64::NEG_INFINITY }
    }

    #[inline]
    pub fn update(&mut self, x: f64) {
        self.count += 1;
        let delta = x - self.mean;
        self.mean += delta / self.count as f64;
        self.m2 += delta * (x - self.mean);
        if x < self.min {
            self.min = x;
        }
        if x > self.max {
            self.max = x;
        }
    }

    pub fn update_many(&mut self, xs: &[f64]) {
        for &x in xs {
            self.update(x);
        }
    }

    /// State equal (up to rounding) to one pass over both inputs.
    pub fn merge(&self, other: &Welford) -> Welford {
        if other.count == 0 {
            return self.clone();
        }
        if self.count == 0 {
            return other.clone();
        }
        let na = self.count as f64;
        let nb = other.count as f64;
        let n = na + nb;
        let delta = other.mean - self.mean;
        Welford {
            count: self.count + other.count,
            mean: self.mean + delta * (nb / n),
            m2: self.m2 + other.m2 + delta * delta * (na * nb / n),
            min: self.min.min(other.min),
            max: self.max.max(other.max),
        }
    }

    /// Variance with `ddof` delta degrees of freedom; NaN when count <= ddof.
    pub fn variance(&self, ddof: u64) -> f64 {
        if self.count <= ddof {
            return f64::NAN;
        }
        self.m2 / (self.count - ddof) as f64
    }

    pub fn to_bytes(&self) -> Vec<u8> {
        let mut w = Writer::new(Kind::Welford);
        w.u64(self.count).f64(self.mean).f64(self.m2).f64(self.min).f64(self.max);
        w.finish()
    }

    pub fn from_bytes(data: &[u8]) -> Result<Self, CodecError> {
        let mut r = Reader::new(data, Kind::Welford)?;
        let s = Welford { count: r.u64()?, mean: r.f64()?, m2: r.f64()?, min: r.f64()?, max: r.f64()? };
        r.finish()?;
        Ok(s)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn merge_equals_single_pass() {
        let xs: Vec<f64> = (0..1000).map(|i| ((i * 7919) % 1013) as f64 * 0.37 - 50.0).collect();
        let mut all = Welford::new();
        all.update_many(&xs);
        let mut a = Welford::new();
        a.update_many(&xs[..333]);
        let mut b = Welford::new();
        b.update_many(&xs[333..]);
        let m = a.merge(&b);
        assert_eq!(m.count, all.count);
        assert!((m.mean - all.mean).abs() < 1e-12 * all.mean.abs().max(1.0));
        assert!((m.m2 - all.m2).abs() < 1e-9 * all.m2);
        assert_eq!(m.min, all.min);
        assert_eq!(m.max, all.max);
    }

    #[test]
    fn bytes_round_trip() {
        let mut a = Welford::new();
        a.update_many(&[1.0, 2.0, 4.0]);
        assert_eq!(Welford::from_bytes(&a.to_bytes()).unwrap(), a);
    }
}
