//! The A/B router's per-signal work, for whole batches: read a `SignalEmitted`, find its
//! experiment and variant, apply the variant's config, write the routed signal and the NATS
//! `PUB` frame that delivers it.
//!
//! It mirrors `autoopt.ab.router.SignalRouter.route` byte for byte (the routed payloads equal
//! msgspec's encoding of the same `SignalRouted`; ids are the same derived UUIDv8 strings), and
//! takes only the messages it can vouch for: anything else (another event type, a field of an
//! unexpected type, a field breaking `autoopt.fieldrules`, a redelivery past `max_deliver`, ...)
//! stops the batch at that message so the Python path handles it, in order (`decode` refuses
//! what breaks a rule and the router dead-letters it).

use std::collections::{HashMap, HashSet};
use std::fmt::Write as _;
use std::io::Write as _;

use sha2::{Digest, Sha256};

use super::hashing::{bucket_v2_from_state, choose_variation, fnv1a_utf16};
use super::msgpack::{self as mp, ReadError, Reader, Value};

const SIGNAL_TAG: &str = "signal.emitted";
const ROUTED_TAG: &str = "signal.routed";

/// What identifies a unit of assignment.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Unit {
    SignalId,
    Symbol,
    Account,
}

/// One arm, with everything routing to it needs precomputed.
#[derive(Clone, Debug)]
pub struct Variant {
    pub name: String,
    pub release_id: String,
    /// Where its signals go (live, or paper for a shadow challenger).
    pub subject: String,
    pub paper: bool,
    /// The id step, `route/<experiment>/<variant>`.
    pub step: String,
    pub threshold: Option<f64>,
    pub size_multiplier: f64,
    /// The plugin-declared config keys, already msgpack-encoded (a map).
    pub config: Vec<u8>,
}

/// A running experiment.
#[derive(Clone, Debug)]
pub struct Experiment {
    pub name: String,
    /// The symbol it covers, or `"*"` for all.
    pub symbol: String,
    pub unit: Unit,
    /// FNV-1a state after the seed (the key continues it).
    pub seed_state: u32,
    pub ranges: Vec<(f64, f64)>,
    pub shadow: bool,
    pub variants: Vec<Variant>,
    /// Units already assigned (symbol and account units; their first route records it).
    pub assigned: HashSet<String>,
}

/// `autoopt.fieldrules` limits, mirrored: ids, symbols, timestamps (1970..2200 in Unix ns).
pub const MAX_ID_LEN: usize = 256;
pub const MAX_SYMBOL_LEN: usize = 64;
pub const MAX_TS_NS: i64 = 7_258_118_400 * 1_000_000_000;
pub const SIDES: [&str; 3] = ["long", "short", "flat"];

/// An id: non-empty, at most `MAX_ID_LEN` characters, no control character (Unicode Cc,
/// exactly what `char::is_control` tests).
pub fn id_ok(s: &str) -> bool {
    !s.is_empty()
        && (s.len() <= MAX_ID_LEN || s.chars().count() <= MAX_ID_LEN)
        && !s.chars().any(char::is_control)
}

/// A symbol this reader vouches for: 1..=64 printable ASCII characters, no space, `*` or `>`.
/// Non-ASCII symbols may be valid, but Python's `str.isprintable` judges them: left to Python.
pub fn symbol_ok(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= MAX_SYMBOL_LEN
        && s.bytes().all(|b| (0x21..=0x7e).contains(&b) && b != b'*' && b != b'>')
}

pub fn ts_ok(t: i64) -> bool {
    (0..=MAX_TS_NS).contains(&t)
}

/// `Ok(())` when a rule holds, else `Unsupported` (Python decides and dead-letters).
fn rule(ok: bool) -> Result<(), ReadError> {
    if ok {
        Ok(())
    } else {
        Err(ReadError::Unsupported)
    }
}

fn checked_id(v: Value<'_>) -> Result<&str, ReadError> {
    let s = string(v)?;
    rule(id_ok(s))?;
    Ok(s)
}

fn checked_opt_id(v: Value<'_>) -> Result<Option<&str>, ReadError> {
    let s = opt_str(v)?;
    rule(s.map_or(true, id_ok))?;
    Ok(s)
}

fn checked_ts(v: Value<'_>) -> Result<i64, ReadError> {
    let t = int(v)?;
    rule(ts_ok(t))?;
    Ok(t)
}

fn finite(v: Value<'_>) -> Result<f64, ReadError> {
    let x = number(v)?;
    rule(x.is_finite())?;
    Ok(x)
}

/// The fields of a `SignalEmitted` that routing reads (borrowed from the payload).
#[derive(Clone, Debug, PartialEq)]
pub struct Signal<'a> {
    pub event_id: &'a str,
    pub ts_event: i64,
    pub correlation_id: Option<&'a str>,
    pub symbol: &'a str,
    pub signal_id: &'a str,
    pub side: &'a str,
    pub confidence: f64,
    pub price: Option<f64>,
    /// `extra["account"]` when it is a non-empty str.
    pub account: Option<&'a str>,
}

fn number(v: Value<'_>) -> Result<f64, ReadError> {
    match v {
        Value::Float(f) => Ok(f),
        Value::Int(i) => Ok(i as f64),
        Value::UInt(u) => Ok(u as f64),
        _ => Err(ReadError::Unsupported),
    }
}

fn opt_str(v: Value<'_>) -> Result<Option<&str>, ReadError> {
    match v {
        Value::Str(s) => Ok(Some(s)),
        Value::Nil => Ok(None),
        _ => Err(ReadError::Unsupported),
    }
}

fn int(v: Value<'_>) -> Result<i64, ReadError> {
    match v {
        Value::Int(i) => Ok(i),
        _ => Err(ReadError::Unsupported),
    }
}

fn string(v: Value<'_>) -> Result<&str, ReadError> {
    match v {
        Value::Str(s) => Ok(s),
        _ => Err(ReadError::Unsupported),
    }
}

/// Skips the items of a container whose header was already read.
fn skip_items(r: &mut Reader<'_>, head: Value<'_>) -> Result<(), ReadError> {
    match head {
        Value::Array(n) => (0..n).try_for_each(|_| r.skip()),
        Value::Map(n) => (0..n).try_for_each(|_| {
            r.str()?;
            r.skip()
        }),
        _ => Ok(()),
    }
}

/// Reads a `SignalEmitted` payload, checking every field the way msgspec's decoder and the
/// event's field rules would (types, required fields, no trailing bytes, ids, timestamps,
/// symbol, side, finite numbers); `Unsupported` for anything else.
pub fn read_signal(buf: &[u8]) -> Result<Signal<'_>, ReadError> {
    let mut r = Reader::new(buf);
    let Value::Map(n) = r.value()? else { return Err(ReadError::Unsupported) };
    let (mut tag, mut event_id, mut ts_event, mut ts_init) = (None, None, None, None);
    let (mut symbol, mut signal_id, mut side, mut confidence) = (None, None, None, None);
    let (mut correlation_id, mut price, mut account) = (None, None, None);
    let mut seen = 0u32;
    for _ in 0..n {
        let key = r.str()?;
        let bit = match key {
            "type" => 0,
            "event_id" => 1,
            "ts_event" => 2,
            "ts_init" => 3,
            "schema" => 4,
            "causation_id" => 5,
            "correlation_id" => 6,
            "symbol" => 7,
            "signal_id" => 8,
            "side" => 9,
            "confidence" => 10,
            "release_id" => 11,
            "horizon_s" => 12,
            "price" => 13,
            "extra" => 14,
            _ => {
                r.skip()?; // msgspec ignores unknown fields
                continue;
            }
        };
        if seen & (1 << bit) != 0 {
            return Err(ReadError::Unsupported); // a repeated key: leave it to msgspec
        }
        seen |= 1 << bit;
        let v = r.value()?;
        match bit {
            0 => tag = Some(string(v)?),
            1 => event_id = Some(checked_id(v)?),
            2 => ts_event = Some(checked_ts(v)?),
            3 => ts_init = Some(checked_ts(v)?),
            4 => rule(int(v)? >= 1)?,
            5 | 11 => {
                checked_opt_id(v)?;
            }
            6 => correlation_id = checked_opt_id(v)?,
            7 => {
                let s = string(v)?;
                rule(symbol_ok(s))?;
                symbol = Some(s);
            }
            8 => signal_id = Some(checked_id(v)?),
            9 => {
                let s = string(v)?;
                rule(SIDES.contains(&s))?;
                side = Some(s);
            }
            10 => confidence = Some(finite(v)?),
            12 | 13 => {
                let x = if v == Value::Nil { None } else { Some(finite(v)?) };
                if bit == 12 {
                    rule(x.map_or(true, |h| h >= 0.0))?; // horizon_s
                } else {
                    price = x;
                }
            }
            _ => {
                let Value::Map(m) = v else { return Err(ReadError::Unsupported) };
                for _ in 0..m {
                    let k = r.str()?;
                    let item = r.value()?;
                    if k == "account" {
                        if account.is_some() {
                            return Err(ReadError::Unsupported);
                        }
                        account = Some(match item {
                            Value::Str(s) if !s.is_empty() => Some(s),
                            _ => None,
                        });
                    }
                    skip_items(&mut r, item)?;
                }
            }
        }
    }
    if !r.at_end() {
        return Err(ReadError::Malformed);
    }
    if tag != Some(SIGNAL_TAG) || ts_init.is_none() {
        return Err(ReadError::Unsupported);
    }
    let missing = ReadError::Unsupported;
    Ok(Signal {
        event_id: event_id.ok_or(missing)?,
        ts_event: ts_event.ok_or(missing)?,
        correlation_id,
        symbol: symbol.ok_or(missing)?,
        signal_id: signal_id.ok_or(missing)?,
        side: side.ok_or(missing)?,
        confidence: confidence.ok_or(missing)?,
        price,
        account: account.flatten(),
    })
}

/// `autoopt.ids.derived_event_id`: SHA-256 of `cause \x1f step`, first 16 bytes as a UUIDv8.
pub fn derived_event_id(cause: &str, step: &str) -> String {
    let mut h = Sha256::new();
    h.update(cause.as_bytes());
    h.update([0x1f]);
    h.update(step.as_bytes());
    let d = h.finalize();
    let mut b = [0u8; 16];
    b.copy_from_slice(&d[..16]);
    b[6] = (b[6] & 0x0f) | 0x80;
    b[8] = (b[8] & 0x3f) | 0x80;
    let mut s = String::with_capacity(36);
    for (i, byte) in b.iter().enumerate() {
        if matches!(i, 4 | 6 | 8 | 10) {
            s.push('-');
        }
        let _ = write!(s, "{byte:02x}");
    }
    s
}

/// The delivery count in a JetStream ack subject (v1: 9 tokens, v2: domain + account hash).
pub fn delivered_count(reply: &str) -> Option<u64> {
    let t: Vec<&str> = reply.split('.').collect();
    let tok = if t.len() == 9 {
        t[4]
    } else if t.len() >= 11 && t[0] == "$JS" && t[1] == "ACK" {
        t[6]
    } else {
        return None;
    };
    tok.parse().ok()
}

/// A new unit's first assignment, for the `VariantAssigned` record.
#[derive(Clone, Debug, PartialEq)]
pub struct NewUnit {
    pub experiment: usize,
    pub unit_key: String,
    pub variant: usize,
}

/// The ids a batch record derives from: the first route's and the last route's.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct RouteIds {
    pub event_id: String,
    pub causation_id: String,
    pub correlation_id: String,
}

/// What a run over a batch produced.
#[derive(Debug, Default)]
pub struct Routed {
    /// `PUB <subject> <len>\r\n<payload>\r\n` for every delivery, in order.
    pub frames: Vec<u8>,
    pub deliveries: usize,
    pub payload_bytes: usize,
    /// The encoded `SignalRouted` of every route, back to back.
    pub routes: Vec<u8>,
    pub n_routes: usize,
    pub first: Option<RouteIds>,
    pub last: Option<RouteIds>,
    pub new_units: Vec<NewUnit>,
    pub routed: usize,
    pub passed: usize,
    pub unroutable: usize,
}

/// The running experiments and where unrouted signals go.
pub struct Table {
    pub experiments: Vec<Experiment>,
    pub passthrough: String,
    pub max_payload: usize,
    by_symbol: HashMap<String, Option<usize>>,
    /// One signal's routed payloads back to back, and each one's variant, end and ids (reused).
    scratch: Vec<u8>,
    encoded: Vec<(usize, usize, RouteIds)>, // (variant, end in scratch, ids)
}

fn frame(out: &mut Routed, subject: &str, payload: &[u8]) {
    let f = &mut out.frames;
    f.extend_from_slice(b"PUB ");
    f.extend_from_slice(subject.as_bytes());
    let _ = write!(f, " {}\r\n", payload.len());
    f.extend_from_slice(payload);
    f.extend_from_slice(b"\r\n");
    out.deliveries += 1;
    out.payload_bytes += payload.len();
}

impl Table {
    pub fn new(experiments: Vec<Experiment>, passthrough: String, max_payload: usize) -> Self {
        Table {
            experiments,
            passthrough,
            max_payload,
            by_symbol: HashMap::new(),
            scratch: Vec::new(),
            encoded: Vec::new(),
        }
    }

    /// `ExperimentBook.running_for`: the first experiment covering `symbol`.
    fn experiment_for(&mut self, symbol: &str) -> Option<usize> {
        if let Some(&hit) = self.by_symbol.get(symbol) {
            return hit;
        }
        let hit = self.experiments.iter().position(|e| e.symbol == "*" || e.symbol == symbol);
        self.by_symbol.insert(symbol.to_owned(), hit);
        hit
    }

    /// Routes `payloads[start..]` in order until one needs the Python path; returns its index
    /// (or `payloads.len()`). `delivered[i]` is that message's delivery count (None: unknown).
    pub fn route_batch(
        &mut self,
        payloads: &[&[u8]],
        delivered: &[Option<u64>],
        max_deliver: u64,
        now_ns: i64,
        out: &mut Routed,
    ) -> usize {
        for (i, raw) in payloads.iter().enumerate() {
            match delivered.get(i).copied().flatten() {
                Some(d) if d <= max_deliver => {}
                _ => return i,
            }
            let Ok(sig) = read_signal(raw) else { return i };
            if !self.route_one(&sig, raw, now_ns, out) {
                return i;
            }
        }
        payloads.len()
    }

    /// One signal; false (nothing written) when a routed payload would exceed `max_payload`.
    fn route_one(&mut self, sig: &Signal<'_>, raw: &[u8], now_ns: i64, out: &mut Routed) -> bool {
        let Some(ei) = self.experiment_for(sig.symbol) else {
            return self.pass(raw, out, false);
        };
        let exp = &self.experiments[ei];
        let key = match exp.unit {
            Unit::SignalId => Some(sig.signal_id),
            Unit::Symbol => Some(sig.symbol),
            Unit::Account => sig.account,
        };
        let Some(key) = key else { return self.pass(raw, out, true) };
        let b = bucket_v2_from_state(fnv1a_utf16(exp.seed_state, key));
        let Some(idx) = choose_variation(b, &exp.ranges) else { return self.pass(raw, out, false) };
        // every routed payload first, so one over `max_payload` leaves nothing half written
        let Table { experiments, scratch, encoded, max_payload, .. } = self;
        let exp = &experiments[ei];
        let chosen = if exp.shadow { 0..exp.variants.len() } else { idx..idx + 1 };
        scratch.clear();
        encoded.clear();
        for vi in chosen {
            let begin = scratch.len();
            let ids = encode_routed(scratch, sig, exp, &exp.variants[vi], key, now_ns);
            if scratch.len() - begin > *max_payload {
                return false;
            }
            encoded.push((vi, scratch.len(), ids));
        }
        let mut begin = 0;
        for (vi, end, ids) in encoded.drain(..) {
            let payload = &scratch[begin..end];
            frame(out, &exp.variants[vi].subject, payload);
            out.routes.extend_from_slice(payload);
            out.n_routes += 1;
            if out.first.is_none() {
                out.first = Some(ids.clone());
            }
            out.last = Some(ids);
            begin = end;
        }
        out.routed += 1;
        let exp = &mut experiments[ei];
        if exp.unit != Unit::SignalId && !exp.shadow && !exp.assigned.contains(key) {
            exp.assigned.insert(key.to_owned());
            out.new_units.push(NewUnit { experiment: ei, unit_key: key.to_owned(), variant: idx });
        }
        true
    }

    fn pass(&self, raw: &[u8], out: &mut Routed, unroutable: bool) -> bool {
        frame(out, &self.passthrough, raw);
        out.passed += 1;
        out.unroutable += unroutable as usize;
        true
    }
}

/// msgspec's encoding of the `SignalRouted` for `sig` in variant `v` (fields in declaration
/// order, the tag first); returns its ids.
fn encode_routed(
    out: &mut Vec<u8>,
    sig: &Signal<'_>,
    exp: &Experiment,
    v: &Variant,
    unit_key: &str,
    now_ns: i64,
) -> RouteIds {
    let event_id = derived_event_id(sig.event_id, &v.step);
    let correlation = match sig.correlation_id {
        Some(c) if !c.is_empty() => c,
        _ => sig.event_id,
    };
    let side = match v.threshold {
        Some(t) if sig.confidence < t => "flat",
        _ => sig.side,
    };
    mp::write_map_header(out, 19);
    let s = |out: &mut Vec<u8>, k: &str, v: &str| {
        mp::write_str(out, k);
        mp::write_str(out, v);
    };
    s(out, "type", ROUTED_TAG);
    s(out, "event_id", &event_id);
    mp::write_str(out, "ts_event");
    mp::write_int(out, sig.ts_event);
    mp::write_str(out, "ts_init");
    mp::write_int(out, now_ns);
    mp::write_str(out, "schema");
    mp::write_int(out, 1);
    s(out, "causation_id", sig.event_id);
    s(out, "correlation_id", correlation);
    s(out, "symbol", sig.symbol);
    s(out, "signal_id", sig.signal_id);
    s(out, "experiment", &exp.name);
    s(out, "variant", &v.name);
    s(out, "release_id", &v.release_id);
    s(out, "unit_key", unit_key);
    s(out, "side", side);
    mp::write_str(out, "confidence");
    mp::write_f64(out, sig.confidence);
    mp::write_str(out, "size_multiplier");
    mp::write_f64(out, v.size_multiplier);
    mp::write_str(out, "paper");
    mp::write_bool(out, v.paper);
    mp::write_str(out, "price");
    match sig.price {
        Some(p) => mp::write_f64(out, p),
        None => mp::write_nil(out),
    }
    mp::write_str(out, "config");
    out.extend_from_slice(&v.config);
    RouteIds {
        event_id,
        causation_id: sig.event_id.to_owned(),
        correlation_id: correlation.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kernels::hashing::{bucket_ranges, FNV_OFFSET};

    fn signal_bytes(symbol: &str, account: Option<&str>, extra_field: bool) -> Vec<u8> {
        let mut b = Vec::new();
        mp::write_map_header(&mut b, if extra_field { 11 } else { 10 });
        for (k, v) in [("type", SIGNAL_TAG), ("event_id", "e-1"), ("symbol", symbol), ("signal_id", "s-1"), ("side", "long")] {
            mp::write_str(&mut b, k);
            mp::write_str(&mut b, v);
        }
        mp::write_str(&mut b, "ts_event");
        mp::write_int(&mut b, 5);
        mp::write_str(&mut b, "ts_init");
        mp::write_int(&mut b, 6);
        mp::write_str(&mut b, "confidence");
        mp::write_int(&mut b, 1); // an int for a float field, as msgspec allows
        mp::write_str(&mut b, "price");
        mp::write_nil(&mut b);
        mp::write_str(&mut b, "extra");
        mp::write_map_header(&mut b, 2);
        mp::write_str(&mut b, "tags");
        b.push(0x92);
        mp::write_str(&mut b, "a");
        b.push(0x80);
        mp::write_str(&mut b, "account");
        match account {
            Some(a) => mp::write_str(&mut b, a),
            None => mp::write_int(&mut b, 7),
        }
        if extra_field {
            mp::write_str(&mut b, "future_field");
            b.push(0x91);
            mp::write_f64(&mut b, 1.5);
        }
        b
    }

    #[test]
    fn reads_a_signal_and_ignores_unknown_fields() {
        let raw = signal_bytes("BTC", Some("acct-1"), true);
        let s = read_signal(&raw).unwrap();
        assert_eq!((s.event_id, s.symbol, s.side, s.confidence, s.price), ("e-1", "BTC", "long", 1.0, None));
        assert_eq!(s.account, Some("acct-1"));
        assert_eq!(read_signal(&signal_bytes("BTC", None, false)).unwrap().account, None);
    }

    #[test]
    fn leaves_what_it_cannot_vouch_for_to_python() {
        let mut raw = signal_bytes("BTC", None, false);
        raw.push(0xc0); // trailing byte
        assert_eq!(read_signal(&raw), Err(ReadError::Malformed));
        let raw = signal_bytes("BTC", None, false);
        assert_eq!(read_signal(&raw[..raw.len() - 3]), Err(ReadError::Malformed));
        let mut other = Vec::new();
        mp::write_map_header(&mut other, 1);
        mp::write_str(&mut other, "type");
        mp::write_str(&mut other, "trade.fill");
        assert_eq!(read_signal(&other), Err(ReadError::Unsupported));
    }

    /// A valid signal map with one field replaced (by key) or added.
    fn signal_with(key: &str, write: &dyn Fn(&mut Vec<u8>)) -> Vec<u8> {
        let base: [(&str, &dyn Fn(&mut Vec<u8>)); 8] = [
            ("type", &|b| mp::write_str(b, SIGNAL_TAG)),
            ("event_id", &|b| mp::write_str(b, "e-1")),
            ("ts_event", &|b| mp::write_int(b, 5)),
            ("ts_init", &|b| mp::write_int(b, 6)),
            ("symbol", &|b| mp::write_str(b, "BTC/USDT")),
            ("signal_id", &|b| mp::write_str(b, "s-1")),
            ("side", &|b| mp::write_str(b, "long")),
            ("confidence", &|b| mp::write_f64(b, 0.5)),
        ];
        let known = base.iter().any(|(k, _)| *k == key);
        let mut b = Vec::new();
        mp::write_map_header(&mut b, base.len() + usize::from(!known));
        for (k, w) in base {
            mp::write_str(&mut b, k);
            if k == key {
                write(&mut b)
            } else {
                w(&mut b)
            }
        }
        if !known {
            mp::write_str(&mut b, key);
            write(&mut b);
        }
        b
    }

    #[test]
    fn refuses_what_the_field_rules_refuse() {
        assert!(read_signal(&signal_with("price", &|b| mp::write_f64(b, 1.5))).is_ok());
        assert!(read_signal(&signal_with("symbol", &|b| mp::write_str(b, &"X".repeat(64)))).is_ok());
        assert!(read_signal(&signal_with("event_id", &|b| mp::write_str(b, &"é".repeat(256)))).is_ok());
        let bad: Vec<(&str, Box<dyn Fn(&mut Vec<u8>)>)> = vec![
            ("symbol", Box::new(|b| mp::write_str(b, ""))),
            ("symbol", Box::new(|b| mp::write_str(b, &"X".repeat(65)))),
            ("symbol", Box::new(|b| mp::write_str(b, "BTC*"))),
            ("symbol", Box::new(|b| mp::write_str(b, ">"))),
            ("symbol", Box::new(|b| mp::write_str(b, "BTC USDT"))),
            ("symbol", Box::new(|b| mp::write_str(b, "BTC\tUSDT"))),
            ("symbol", Box::new(|b| mp::write_str(b, "ÄKTIE"))), // valid, but Python judges it
            ("event_id", Box::new(|b| mp::write_str(b, ""))),
            ("event_id", Box::new(|b| mp::write_str(b, &"é".repeat(257)))),
            ("event_id", Box::new(|b| mp::write_str(b, "e\n1"))),
            ("signal_id", Box::new(|b| mp::write_str(b, ""))),
            ("causation_id", Box::new(|b| mp::write_str(b, ""))),
            ("correlation_id", Box::new(|b| mp::write_str(b, "c\u{85}"))),
            ("release_id", Box::new(|b| mp::write_str(b, ""))),
            ("side", Box::new(|b| mp::write_str(b, "buy"))),
            ("confidence", Box::new(|b| mp::write_f64(b, f64::NAN))),
            ("confidence", Box::new(|b| mp::write_f64(b, f64::INFINITY))),
            ("price", Box::new(|b| mp::write_f64(b, f64::NEG_INFINITY))),
            ("horizon_s", Box::new(|b| mp::write_f64(b, -1.0))),
            ("ts_event", Box::new(|b| mp::write_int(b, -5))),
            ("ts_init", Box::new(|b| mp::write_int(b, MAX_TS_NS + 1))),
            ("schema", Box::new(|b| mp::write_int(b, 0))),
        ];
        for (key, write) in bad {
            let raw = signal_with(key, &*write);
            assert_eq!(read_signal(&raw), Err(ReadError::Unsupported), "{key}");
        }
    }

    #[test]
    fn derived_ids_match_the_python_reference() {
        // autoopt.ids.derived_event_id("abc", "route/x/y")
        assert_eq!(derived_event_id("abc", "route/x/y"), "8a08ef2c-a511-8d83-8fc5-1a49c59db82a");
    }

    #[test]
    fn delivery_counts_from_both_ack_layouts() {
        assert_eq!(delivered_count("$JS.ACK.SIGNALS.r.3.10.9.1700000000.0"), Some(3));
        assert_eq!(delivered_count("$JS.ACK.dom.acchash.SIGNALS.r.2.10.9.1700000000.0.tok"), Some(2));
        assert_eq!(delivered_count("_INBOX.x"), None);
    }

    #[test]
    fn routes_passes_and_stops_in_order() {
        let v = |name: &str| Variant {
            name: name.into(),
            release_id: "r1".into(),
            subject: format!("route.live.x.{name}"),
            paper: false,
            step: format!("route/x/{name}"),
            threshold: None,
            size_multiplier: 1.0,
            config: vec![0x80],
        };
        let exp = Experiment {
            name: "x".into(),
            symbol: "BTC".into(),
            unit: Unit::Account,
            seed_state: fnv1a_utf16(FNV_OFFSET, "x"),
            ranges: bucket_ranges(2, 1.0, Some(&[0.5, 0.5])),
            shadow: false,
            variants: vec![v("a"), v("b")],
            assigned: HashSet::new(),
        };
        let mut t = Table::new(vec![exp], "route.live".into(), 1 << 20);
        let (btc, eth, no_acct) = (signal_bytes("BTC", Some("acct-1"), false), signal_bytes("ETH", None, false), signal_bytes("BTC", None, false));
        let bad = [0xc1u8];
        let payloads: Vec<&[u8]> = vec![&btc, &eth, &no_acct, &btc, &bad, &btc];
        let delivered = vec![Some(1); payloads.len()];
        let mut out = Routed::default();
        assert_eq!(t.route_batch(&payloads, &delivered, 5, 9, &mut out), 4);
        assert_eq!((out.routed, out.passed, out.unroutable, out.deliveries, out.n_routes), (2, 2, 1, 4, 2));
        assert_eq!(out.new_units.len(), 1, "the second route of acct-1 is not a new unit");
        let mut out = Routed::default();
        assert_eq!(t.route_batch(&payloads[..1], &[Some(6)], 5, 9, &mut out), 0, "past max_deliver");

        // shadow: the second variant's payload is too big, so nothing of the signal is written
        let mut big = v("b");
        big.config = Vec::new();
        mp::write_map_header(&mut big.config, 1);
        mp::write_str(&mut big.config, "k");
        mp::write_str(&mut big.config, &"x".repeat(2000));
        let shadow = Experiment {
            shadow: true,
            unit: Unit::SignalId,
            variants: vec![v("a"), big],
            ..t.experiments[0].clone()
        };
        let mut t = Table::new(vec![shadow], "route.live".into(), 1000);
        let mut out = Routed::default();
        assert_eq!(t.route_batch(&payloads[..1], &[Some(1)], 5, 9, &mut out), 0);
        assert_eq!((out.deliveries, out.n_routes, out.frames.len(), out.routes.len()), (0, 0, 0, 0));
        assert!(out.first.is_none() && out.routed == 0);
    }
}
