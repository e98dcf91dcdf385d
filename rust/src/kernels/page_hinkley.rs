//! Page-Hinkley test with the arithmetic of `river.drift.PageHinkley` (fading cumulative
//! deviation from the running mean), plus a two-sided tabular CUSUM.

use super::codec::{CodecError, Kind, Reader, Writer};

/// 0-based indices of the values on which `update` detected drift, fed in order.
fn hit_indices(xs: &[f64], mut update: impl FnMut(f64) -> bool) -> Vec<i64> {
    xs.iter().enumerate().filter(|&(_, &x)| update(x)).map(|(i, _)| i as i64).collect()
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    Up = 1,
    Down = 2,
    Both = 3,
}

impl Mode {
    pub fn parse(s: &str) -> Result<Mode, String> {
        match s {
            "up" => Ok(Mode::Up),
            "down" => Ok(Mode::Down),
            "both" => Ok(Mode::Both),
            other => Err(format!("PageHinkley mode must be 'up', 'down' or 'both', got {other:?}")),
        }
    }
    pub fn as_str(self) -> &'static str {
        match self {
            Mode::Up => "up",
            Mode::Down => "down",
            Mode::Both => "both",
        }
    }
    fn from_u8(v: u8) -> Option<Mode> {
        match v {
            1 => Some(Mode::Up),
            2 => Some(Mode::Down),
            3 => Some(Mode::Both),
            _ => None,
        }
    }
}

#[derive(Clone, Debug, PartialEq)]
pub struct PageHinkley {
    pub min_instances: u64,
    pub delta: f64,
    pub threshold: f64,
    pub alpha: f64,
    pub mode: Mode,
    n: f64,
    mean: f64,
    sum_increase: f64,
    sum_decrease: f64,
    min_increase: f64,
    max_decrease: f64,
    pub drift_detected: bool,
    pub n_detections: u64,
}

impl PageHinkley {
    pub fn new(min_instances: i64, delta: f64, threshold: f64, alpha: f64, mode: Mode) -> Result<Self, String> {
        if min_instances < 0 {
            return Err(format!("PageHinkley min_instances must be >= 0, got {min_instances}"));
        }
        if !delta.is_finite() {
            return Err(format!("PageHinkley delta must be finite, got {delta}"));
        }
        if !(threshold.is_finite() && threshold > 0.0) {
            return Err(format!("PageHinkley threshold must be a positive number, got {threshold}"));
        }
        if !(alpha > 0.0 && alpha <= 1.0) {
            return Err(format!("PageHinkley alpha must be in (0, 1], got {alpha}"));
        }
        let mut s = PageHinkley {
            min_instances: min_instances as u64,
            delta,
            threshold,
            alpha,
            mode,
            n: 0.0,
            mean: 0.0,
            sum_increase: 0.0,
            sum_decrease: 0.0,
            min_increase: f64::INFINITY,
            max_decrease: -1.0,
            drift_detected: false,
            n_detections: 0,
        };
        s.reset();
        Ok(s)
    }

    fn reset(&mut self) {
        self.n = 0.0;
        self.mean = 0.0;
        self.sum_increase = 0.0;
        self.sum_decrease = 0.0;
        self.min_increase = f64::INFINITY;
        // river initialises the running maximum at -1, not -inf; kept for identical detections.
        self.max_decrease = -1.0;
        self.drift_detected = false;
    }

    pub fn mean(&self) -> f64 {
        self.mean
    }
    pub fn n_seen(&self) -> f64 {
        self.n
    }

    #[inline]
    pub fn update(&mut self, x: f64) -> bool {
        if self.drift_detected {
            self.reset();
        }
        self.n += 1.0;
        self.mean += (1.0 / self.n) * (x - self.mean);
        let dev = x - self.mean;
        self.sum_increase = self.alpha * self.sum_increase + dev - self.delta;
        self.sum_decrease = self.alpha * self.sum_decrease + dev + self.delta;
        if self.sum_increase < self.min_increase {
            self.min_increase = self.sum_increase;
        }
        if self.sum_decrease > self.max_decrease {
            self.max_decrease = self.sum_decrease;
        }
        if self.n >= self.min_instances as f64 {
            let up = self.sum_increase - self.min_increase;
            let down = self.max_decrease - self.sum_decrease;
            self.drift_detected = match self.mode {
                Mode::Up => up > self.threshold,
                Mode::Down => down > self.threshold,
                Mode::Both => up > self.threshold || down > self.threshold,
            };
            if self.drift_detected {
                self.n_detections += 1;
            }
        }
        self.drift_detected
    }

    pub fn update_many(&mut self, xs: &[f64]) -> Vec<i64> {
        hit_indices(xs, |x| self.update(x))
    }

    pub fn to_bytes(&self) -> Vec<u8> {
        let mut w = Writer::new(Kind::PageHinkley);
        w.u64(self.min_instances).f64(self.delta).f64(self.threshold).f64(self.alpha).u8(self.mode as u8);
        w.f64(self.n)
            .f64(self.mean)
            .f64(self.sum_increase)
            .f64(self.sum_decrease)
            .f64(self.min_increase)
            .f64(self.max_decrease)
            .bool(self.drift_detected)
            .u64(self.n_detections);
        w.finish()
    }

    pub fn from_bytes(data: &[u8]) -> Result<Self, CodecError> {
        let mut r = Reader::new(data, Kind::PageHinkley)?;
        let min_instances = r.u64()?;
        let delta = r.f64()?;
        let threshold = r.f64()?;
        let alpha = r.f64()?;
        let mode = Mode::from_u8(r.u8()?).ok_or_else(|| r.err("invalid mode tag"))?;
        let mut s = PageHinkley::new(min_instances.min(i64::MAX as u64) as i64, delta, threshold, alpha, mode)
            .map_err(|e| r.err(&e))?;
        s.n = r.f64()?;
        s.mean = r.f64()?;
        s.sum_increase = r.f64()?;
        s.sum_decrease = r.f64()?;
        s.min_increase = r.f64()?;
        s.max_decrease = r.f64()?;
        s.drift_detected = r.bool()?;
        s.n_detections = r.u64()?;
        if !(s.n >= 0.0) {
            return Err(r.err("negative observation count"));
        }
        r.finish()?;
        Ok(s)
    }
}

/// Two-sided tabular CUSUM on `x - target`: S+ = max(0, S+ + x - target - k),
/// S- = max(0, S- + target - x - k); drift when either exceeds `h`. Without a fixed target,
/// the mean of the first `min_instances` values is used. Resets on the update after a detection.
#[derive(Clone, Debug, PartialEq)]
pub struct Cusum {
    pub k: f64,
    pub h: f64,
    pub fixed_target: Option<f64>,
    pub min_instances: u64,
    n: u64,
    warm_mean: f64,
    s_pos: f64,
    s_neg: f64,
    pub drift_detected: bool,
    pub n_detections: u64,
}

impl Cusum {
    pub fn new(k: f64, h: f64, target: Option<f64>, min_instances: i64) -> Result<Self, String> {
        if !(k.is_finite() && k >= 0.0) {
            return Err(format!("CUSUM k must be a finite number >= 0, got {k}"));
        }
        if !(h.is_finite() && h > 0.0) {
            return Err(format!("CUSUM h must be a finite number > 0, got {h}"));
        }
        if let Some(t) = target {
            if !t.is_finite() {
                return Err(format!("CUSUM target must be finite, got {t}"));
            }
        }
        if min_instances < 1 && target.is_none() {
            return Err(format!(
                "CUSUM min_instances must be >= 1 when no target is given, got {min_instances}"
            ));
        }
        if min_instances < 0 {
            return Err(format!("CUSUM min_instances must be >= 0, got {min_instances}"));
        }
        Ok(Cusum {
            k,
            h,
            fixed_target: target,
            min_instances: min_instances as u64,
            n: 0,
            warm_mean: 0.0,
            s_pos: 0.0,
            s_neg: 0.0,
            drift_detected: false,
            n_detections: 0,
        })
    }

    fn reset(&mut self) {
        self.n = 0;
        self.warm_mean = 0.0;
        self.s_pos = 0.0;
        self.s_neg = 0.0;
        self.drift_detected = false;
    }

    pub fn target(&self) -> f64 {
        self.fixed_target.unwrap_or(self.warm_mean)
    }
    pub fn s_pos(&self) -> f64 {
        self.s_pos
    }
    pub fn s_neg(&self) -> f64 {
        self.s_neg
    }

    #[inline]
    pub fn update(&mut self, x: f64) -> bool {
        if self.drift_detected {
            self.reset();
        }
        self.n += 1;
        if self.fixed_target.is_none() && self.n <= self.min_instances {
            self.warm_mean += (x - self.warm_mean) / self.n as f64;
            return false;
        }
        let t = self.target();
        self.s_pos = (self.s_pos + x - t - self.k).max(0.0);
        self.s_neg = (self.s_neg + t - x - self.k).max(0.0);
        if self.n >= self.min_instances && (self.s_pos > self.h || self.s_neg > self.h) {
            self.drift_detected = true;
            self.n_detections += 1;
        }
        self.drift_detected
    }

    pub fn update_many(&mut self, xs: &[f64]) -> Vec<i64> {
        hit_indices(xs, |x| self.update(x))
    }

    pub fn to_bytes(&self) -> Vec<u8> {
        let mut w = Writer::new(Kind::Cusum);
        w.f64(self.k).f64(self.h).bool(self.fixed_target.is_some()).f64(self.fixed_target.unwrap_or(0.0));
        w.u64(self.min_instances).u64(self.n).f64(self.warm_mean).f64(self.s_pos).f64(self.s_neg);
        w.bool(self.drift_detected).u64(self.n_detections);
        w.finish()
    }

    pub fn from_bytes(data: &[u8]) -> Result<Self, CodecError> {
        let mut r = Reader::new(data, Kind::Cusum)?;
        let k = r.f64()?;
        let h = r.f64()?;
        let has_target = r.bool()?;
        let target = r.f64()?;
        let min_instances = r.u64()?;
        let mut s = Cusum::new(
            k,
            h,
            if has_target { Some(target) } else { None },
            min_instances.min(i64::MAX as u64) as i64,
        )
        .map_err(|e| r.err(&e))?;
        s.n = r.u64()?;
        s.warm_mean = r.f64()?;
        s.s_pos = r.f64()?;
        s.s_neg = r.f64()?;
        s.drift_detected = r.bool()?;
        s.n_detections = r.u64()?;
        r.finish()?;
        Ok(s)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn page_hinkley_detects_upward_shift_only_in_up_mode() {
        let mut up = PageHinkley::new(30, 0.005, 50.0, 0.9999, Mode::Up).unwrap();
        let mut down = PageHinkley::new(30, 0.005, 50.0, 0.9999, Mode::Down).unwrap();
        let xs: Vec<f64> = (0..2000).map(|i| if i < 1000 { (i % 2) as f64 } else { 6.0 }).collect();
        assert!(!up.update_many(&xs).is_empty());
        assert!(down.update_many(&xs).is_empty());
    }

    #[test]
    fn cusum_warmup_target_and_detection() {
        let mut c = Cusum::new(0.5, 5.0, None, 10).unwrap();
        let xs: Vec<f64> = (0..100).map(|i| if i < 50 { 0.0 } else { 2.0 }).collect();
        let hits = c.update_many(&xs);
        // S+ grows by 1.5 per step after the shift; exceeds 5 on the 4th shifted value
        assert_eq!(hits[0], 53);
        let d = Cusum::from_bytes(&c.to_bytes()).unwrap();
        assert_eq!(c, d);
    }

    #[test]
    fn bad_params() {
        assert!(PageHinkley::new(30, 0.005, -1.0, 0.9999, Mode::Both).is_err());
        assert!(Mode::parse("sideways").is_err());
        assert!(Cusum::new(-1.0, 5.0, None, 10).is_err());
    }
}
