//! Minimal double-double arithmetic (value = hi + lo, |lo| <= ulp(hi)/2), enough for the
//! exactly-rounded bases and sums in the Smirnov distribution.

#[derive(Clone, Copy, Debug, PartialEq)]
pub struct DD {
    pub hi: f64,
    pub lo: f64,
}

#[inline]
fn two_sum(a: f64, b: f64) -> (f64, f64) {
    let s = a + b;
    let bb = s - a;
    let e = (a - (s - bb)) + (b - bb);
    (s, e)
}

#[inline]
fn quick_two_sum(a: f64, b: f64) -> (f64, f64) {
    let s = a + b;
    (s, b - (s - a))
}

#[inline]
fn two_prod(a: f64, b: f64) -> (f64, f64) {
    let p = a * b;
    (p, a.mul_add(b, -p))
}

impl DD {
    pub const ZERO: DD = DD { hi: 0.0, lo: 0.0 };

    #[inline]
    pub fn from(x: f64) -> DD {
        DD { hi: x, lo: 0.0 }
    }

    #[inline]
    pub fn add(self, o: DD) -> DD {
        let (s1, s2) = two_sum(self.hi, o.hi);
        let (t1, t2) = two_sum(self.lo, o.lo);
        let s2 = s2 + t1;
        let (s1, s2) = quick_two_sum(s1, s2);
        let s2 = s2 + t2;
        let (hi, lo) = quick_two_sum(s1, s2);
        DD { hi, lo }
    }

    #[inline]
    pub fn add_f(self, b: f64) -> DD {
        let (s1, s2) = two_sum(self.hi, b);
        let s2 = s2 + self.lo;
        let (hi, lo) = quick_two_sum(s1, s2);
        DD { hi, lo }
    }

    #[inline]
    pub fn neg(self) -> DD {
        DD { hi: -self.hi, lo: -self.lo }
    }

    #[inline]
    pub fn sub(self, o: DD) -> DD {
        self.add(o.neg())
    }

    #[inline]
    pub fn mul_f(self, b: f64) -> DD {
        let (p1, p2) = two_prod(self.hi, b);
        let p2 = p2 + self.lo * b;
        let (hi, lo) = quick_two_sum(p1, p2);
        DD { hi, lo }
    }

    #[inline]
    pub fn mul(self, o: DD) -> DD {
        let (p1, p2) = two_prod(self.hi, o.hi);
        let p2 = p2 + (self.hi * o.lo + self.lo * o.hi);
        let (hi, lo) = quick_two_sum(p1, p2);
        DD { hi, lo }
    }

    #[inline]
    pub fn div_f(self, b: f64) -> DD {
        let q1 = self.hi / b;
        let (p1, p2) = two_prod(q1, b);
        let (s, e) = two_sum(self.hi, -p1);
        let e = e - p2 + self.lo;
        let q2 = (s + e) / b;
        let (hi, lo) = quick_two_sum(q1, q2);
        DD { hi, lo }
    }

    pub fn floor(self) -> DD {
        let hi = self.hi.floor();
        if hi == self.hi {
            let (h, l) = quick_two_sum(hi, self.lo.floor());
            DD { hi: h, lo: l }
        } else {
            DD { hi, lo: 0.0 }
        }
    }

    /// ln(hi + lo) to first order in lo/hi (the second-order term is below 1e-32).
    #[inline]
    pub fn ln(self) -> f64 {
        self.hi.ln() + self.lo / self.hi
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exact_product_and_division() {
        let x = DD::from(0.1).mul_f(3.0);
        // 3 * 0.1 (the double) exactly: hi is the rounded product, lo the rounding error
        assert_eq!(x.hi, 0.30000000000000004);
        assert!(x.lo != 0.0);
        let q = DD::from(1.0).div_f(3.0).mul_f(3.0);
        assert!((q.hi - 1.0).abs() < 1e-30 || (q.hi + q.lo - 1.0).abs() < 1e-30);
        assert_eq!(DD { hi: 5.0, lo: -1e-20 }.floor().hi, 4.0);
    }
}
