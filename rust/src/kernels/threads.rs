//! How many threads the native kernels may use: one switch for every kernel that splits work.
//!
//! Why: a service shares its cores with the trading engine and the trainer, so the kernels are
//! measured (and may be run) on one thread. `AUTOOPT_THREADS` (read once, at the first kernel
//! call that asks) is a positive integer, or `auto` / `0` / unset for every core the process
//! may use; `set_limit` overrides it at run time (benchmarks switch between 1 and all threads
//! in one process). The limit caps every multi-threaded kernel, an explicit `threads`
//! argument included.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::OnceLock;

pub const ENV_VAR: &str = "AUTOOPT_THREADS";
/// The largest limit accepted (more threads than this never helps these kernels).
pub const MAX_THREADS: usize = 256;

/// 0: no override, the environment decides.
static OVERRIDE: AtomicUsize = AtomicUsize::new(0);

/// The cores this process may run on (1 when unknown).
pub fn available() -> usize {
    std::thread::available_parallelism().map_or(1, |p| p.get())
}

/// Parses an `AUTOOPT_THREADS` value: None, "", "auto" or "0" mean every core; otherwise an
/// integer in [1, MAX_THREADS]. The error is one line naming the variable and the value.
pub fn parse(value: Option<&str>) -> Result<usize, String> {
    let v = value.map(str::trim).unwrap_or("");
    if v.is_empty() || v.eq_ignore_ascii_case("auto") || v == "0" {
        return Ok(available());
    }
    match v.parse::<usize>() {
        Ok(n) if (1..=MAX_THREADS).contains(&n) => Ok(n),
        _ => Err(format!("{ENV_VAR} must be 'auto' or an integer in [1, {MAX_THREADS}], got {v:?}")),
    }
}

fn from_env() -> Result<usize, String> {
    static ENV: OnceLock<Result<usize, String>> = OnceLock::new();
    ENV.get_or_init(|| parse(std::env::var(ENV_VAR).ok().as_deref())).clone()
}

/// The thread limit in force: the run-time override, else `AUTOOPT_THREADS`, else all cores.
pub fn limit() -> Result<usize, String> {
    match OVERRIDE.load(Ordering::Relaxed) {
        0 => from_env(),
        n => Ok(n),
    }
}

/// Sets the limit for this process (clamped to [1, MAX_THREADS]); 0 returns to the environment.
pub fn set_limit(n: usize) {
    OVERRIDE.store(n.min(MAX_THREADS), Ordering::Relaxed);
}

/// Threads for one call: `requested` (0: as many as allowed) capped by the limit.
pub fn for_call(requested: usize) -> Result<usize, String> {
    let cap = limit()?;
    Ok(if requested == 0 { cap } else { requested.min(cap) }.max(1))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_documented_values() {
        assert_eq!(parse(None), Ok(available()));
        assert_eq!(parse(Some("auto")), Ok(available()));
        assert_eq!(parse(Some(" 0 ")), Ok(available()));
        assert_eq!(parse(Some("1")), Ok(1));
        assert_eq!(parse(Some("12")), Ok(12));
        for bad in ["-1", "two", "1.5", "257"] {
            let e = parse(Some(bad)).unwrap_err();
            assert!(e.contains(ENV_VAR) && e.contains(bad) && !e.contains('\n'), "{e}");
        }
    }

    #[test]
    fn override_caps_every_call() {
        set_limit(1);
        assert_eq!(for_call(0), Ok(1));
        assert_eq!(for_call(8), Ok(1));
        set_limit(3);
        assert_eq!(for_call(2), Ok(2));
        assert_eq!(for_call(0), Ok(3));
        set_limit(0);
        assert!(limit().is_ok());
    }
}
