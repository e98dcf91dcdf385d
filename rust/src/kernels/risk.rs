//! The strategy simulation loop (`autoopt.strategy.simulate.reference_loop` transcribed line by
//! line): entry threshold with a no-trade band, minimum holding period, volatility-targeted and
//! capped-Kelly sizing, stop loss / trailing stop / take profit inside the next bar (worse level
//! first when both are touched), daily loss limit and drawdown halt, costs per unit turnover.
//!
//! Bit-identical to the Python reference: the same operations in the same order on f64, no
//! fused multiply-add, no reassociation. Semantics: `autoopt.strategy.params`.

/// The parameter vector, in `autoopt.strategy.simulate.KERNEL_FIELDS` order.
#[derive(Clone, Copy, Debug)]
pub struct Params {
    pub entry_threshold: f64,
    pub no_trade_band: f64,
    pub min_hold_bars: f64,
    pub vol_target: f64,
    pub kelly_cap: f64,
    pub stop_loss_atr: f64,
    pub take_profit_atr: f64,
    pub trailing_stop_atr: f64,
    pub max_leverage: f64,
    pub daily_loss_limit: f64,
    pub max_drawdown: f64,
    pub halt_bars: f64,
}

pub const N_PARAMS: usize = 12;

impl Params {
    pub fn from_slice(k: &[f64]) -> Option<Params> {
        if k.len() != N_PARAMS {
            return None;
        }
        Some(Params {
            entry_threshold: k[0],
            no_trade_band: k[1],
            min_hold_bars: k[2],
            vol_target: k[3],
            kelly_cap: k[4],
            stop_loss_atr: k[5],
            take_profit_atr: k[6],
            trailing_stop_atr: k[7],
            max_leverage: k[8],
            daily_loss_limit: k[9],
            max_drawdown: k[10],
            halt_bars: k[11],
        })
    }
}

/// Inputs of one symbol, all the same length.
pub struct Market<'a> {
    pub open: &'a [f64],
    pub high: &'a [f64],
    pub low: &'a [f64],
    pub close: &'a [f64],
    pub prob: &'a [f64],
    pub atr: &'a [f64],
    pub vol: &'a [f64],
    pub day: &'a [f64],
}

/// Outputs (length n each): net return and turnover of bar t, exposure decided at the close of
/// t, exit kind fired in bar t (0 none, 1 stop, 2 trailing stop, 3 take profit).
pub struct Out<'a> {
    pub returns: &'a mut [f64],
    pub exposure: &'a mut [f64],
    pub turnover: &'a mut [f64],
    pub exits: &'a mut [i8],
}

pub fn simulate(m: &Market<'_>, k: &Params, cost_bps: f64, out: &mut Out<'_>) {
    let n = m.close.len();
    let (o, h, l, c, p, a, v, d) = (m.open, m.high, m.low, m.close, m.prob, m.atr, m.vol, m.day);
    for i in 0..n {
        out.returns[i] = 0.0;
        out.exposure[i] = 0.0;
        out.turnover[i] = 0.0;
        out.exits[i] = 0;
    }
    if n == 0 {
        return;
    }
    let thr = k.entry_threshold;
    let band = k.no_trade_band;
    let cost = cost_bps / 1e4;
    let mut held = 0.0f64;
    let mut direction: i64 = 0;
    let mut entry_px = f64::NAN;
    let mut entry_atr = f64::NAN;
    let mut best = f64::NAN;
    let mut bars_held: i64 = 0;
    let mut stopped_dir: i64 = 0;
    let mut equity = 1.0f64;
    let mut peak = 1.0f64;
    let mut halted_until: i64 = -1;
    let mut cur_day = d[0];
    let mut day_start = 1.0f64;
    let mut day_blocked = false;
    for t in 0..n - 1 {
        let pt = p[t];
        // 1. direction with the no-trade band
        let mut sig: i64 = if pt.is_nan() {
            0
        } else if direction > 0 && pt > thr - band {
            1
        } else if direction < 0 && pt < 1.0 - thr + band {
            -1
        } else if pt > thr {
            1
        } else if pt < 1.0 - thr {
            -1
        } else {
            0
        };
        // 2. minimum holding period
        if direction != 0 && sig != direction && (bars_held as f64) < k.min_hold_bars && !pt.is_nan() {
            sig = direction;
        }
        // 3. no re-entry in the stopped direction
        if stopped_dir != 0 {
            if sig == stopped_dir {
                sig = 0;
            } else {
                stopped_dir = 0;
            }
        }
        // 4. halts
        if (t as i64) < halted_until {
            sig = 0;
        }
        if day_blocked && d[t + 1] == cur_day {
            sig = 0;
        }
        // 5. size
        let mut want = 0.0f64;
        if sig != 0 {
            let mut size = 1.0f64;
            if k.vol_target > 0.0 {
                let vt = v[t];
                size = if vt > 0.0 { k.vol_target / vt } else { 0.0 };
            }
            if k.kelly_cap > 0.0 {
                let conv = (2.0 * pt - 1.0).abs();
                let capped = if k.kelly_cap < conv { k.kelly_cap } else { conv };
                size = size * (capped / k.kelly_cap);
            }
            if size > k.max_leverage {
                size = k.max_leverage;
            }
            want = (sig as f64) * size;
        }
        // 6. entries
        if want != 0.0 {
            if direction != sig {
                direction = sig;
                entry_px = c[t];
                entry_atr = a[t];
                best = c[t];
                bars_held = 0;
            } else if entry_atr.is_nan() {
                entry_atr = a[t];
            }
        } else {
            direction = 0;
        }
        let mut turnover = (want - held).abs();
        let mut r = want * (c[t + 1] / c[t] - 1.0);
        let mut kind: i8 = 0;
        // 7. exits inside bar t+1
        if want != 0.0 && entry_atr > 0.0 {
            let dd = direction as f64;
            let mut adverse = f64::NAN;
            let mut adverse_kind: i8 = 0;
            if k.stop_loss_atr > 0.0 {
                adverse = entry_px - dd * k.stop_loss_atr * entry_atr;
                adverse_kind = 1;
            }
            if k.trailing_stop_atr > 0.0 {
                let trail = best - dd * k.trailing_stop_atr * entry_atr;
                if adverse_kind == 0 || (dd > 0.0 && trail > adverse) || (dd < 0.0 && trail < adverse) {
                    adverse = trail;
                    adverse_kind = 2;
                }
            }
            let target = entry_px + dd * k.take_profit_atr * entry_atr;
            let tp = k.take_profit_atr > 0.0;
            let mut exit_px = 0.0f64;
            let (ob, hb, lb) = (o[t + 1], h[t + 1], l[t + 1]);
            if dd > 0.0 {
                if tp && ob >= target {
                    exit_px = ob;
                    kind = 3;
                } else if adverse_kind != 0 && lb <= adverse {
                    exit_px = if adverse < ob { adverse } else { ob };
                    kind = adverse_kind;
                } else if tp && hb >= target {
                    exit_px = target;
                    kind = 3;
                }
            } else if tp && ob <= target {
                exit_px = ob;
                kind = 3;
            } else if adverse_kind != 0 && hb >= adverse {
                exit_px = if adverse > ob { adverse } else { ob };
                kind = adverse_kind;
            } else if tp && lb <= target {
                exit_px = target;
                kind = 3;
            }
            if kind != 0 {
                r = want * (exit_px / c[t] - 1.0);
                turnover = turnover + want.abs();
                stopped_dir = direction;
                direction = 0;
            }
        }
        let net = r - cost * turnover;
        out.returns[t + 1] = net;
        out.exposure[t] = want;
        out.turnover[t + 1] = turnover;
        out.exits[t + 1] = kind;
        held = if kind != 0 { 0.0 } else { want };
        if direction != 0 {
            bars_held += 1;
            if direction > 0 {
                if h[t + 1] > best {
                    best = h[t + 1];
                }
            } else if l[t + 1] < best {
                best = l[t + 1];
            }
        }
        // 8. equity, daily loss limit, drawdown halt
        if d[t + 1] != cur_day {
            cur_day = d[t + 1];
            day_start = equity;
            day_blocked = false;
        }
        equity = equity * (1.0 + net);
        if equity > peak {
            peak = equity;
        }
        if k.daily_loss_limit > 0.0 && equity / day_start - 1.0 <= -k.daily_loss_limit {
            day_blocked = true;
        }
        if k.max_drawdown > 0.0 && (t as i64) + 1 >= halted_until && 1.0 - equity / peak >= k.max_drawdown {
            let hb = k.halt_bars as i64;
            halted_until = (t as i64) + 1 + if hb > 1 { hb } else { 1 };
            peak = equity;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn neutral() -> Params {
        Params::from_slice(&[0.5, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0]).unwrap()
    }

    #[test]
    fn stop_first_when_both_touched() {
        let n = 4;
        let c = [100.0, 100.0, 100.0, 100.0];
        let o = [100.0, 100.0, 100.0, 100.0];
        let h = [100.0, 100.0, 120.0, 100.0];
        let l = [100.0, 100.0, 80.0, 100.0];
        let p = [0.9, 0.9, 0.9, 0.9];
        let a = [1.0; 4];
        let z = [0.0; 4];
        let m = Market { open: &o, high: &h, low: &l, close: &c, prob: &p, atr: &a, vol: &z, day: &z };
        let mut k = neutral();
        k.stop_loss_atr = 2.0;
        k.take_profit_atr = 2.0;
        let (mut r, mut e, mut tu) = (vec![0.0; n], vec![0.0; n], vec![0.0; n]);
        let mut x = vec![0i8; n];
        simulate(&m, &k, 0.0, &mut Out { returns: &mut r, exposure: &mut e, turnover: &mut tu, exits: &mut x });
        // entered at the close of bar 1 (100); bar 2 touches 98 and 102: the stop is taken
        assert_eq!(x[2], 1);
        assert!((r[2] - (-0.02)).abs() < 1e-15);
    }
}
