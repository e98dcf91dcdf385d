"""Retraining policies to compare: a named set of the decision core's trigger settings.

A policy is a `PolicyConfig` (schedules, degradation, drift, cooldowns, concurrency: exactly what
`autoopt serve` runs), so a backtest compares the settings a desk would deploy. The built-in
names are presets over the configured policy:

``never``        no trigger at all: the model trained at the end of the warm-up trades to the end.
``nightly``      the cron ``0 3 * * *`` (UTC), nothing else.
``weekly``       the cron ``0 3 * * 1`` (Mondays 03:00 UTC), nothing else.
``drift``        the drift policy (PSI/KS on features, ADWIN/Page-Hinkley on predictions and
                 outcomes, as configured), no schedule, no degradation trigger.
``degradation``  the degradation policy (live metrics against the champion's baseline), no
                 schedule, no drift trigger.
``NAME+risk``    any of these with risk re-tuning (e.g. ``nightly+risk``): after every retrain
                 the strategy params are re-tuned, gated and swapped in, as the service does
                 with ``[risk] retune = "with_retrain"`` (docs/risk.md).

A TOML file overrides any setting of the configured policy::

    name = "nightly-or-drift"     # optional; default: the file's stem
    hardware_speedup = 4.0        # optional: the policy's training hardware vs this machine
    [policy]
    schedule = "0 3 * * *"
    cooldown_s = 21600
    [policy.drift]
    enabled = true
    [risk]                        # optional: strategy params and their re-tuning
    retune = "with_retrain"       # "off" (default) | "with_retrain", the service's names
    trials = 50                   # any other [risk] setting of the config, for its re-tunes
    [risk.params]                 # the params in force at the start (default: neutral)
    stop_loss_atr = 2.0

``hardware_speedup`` scales the measured training time when ``--train-delay auto``. Re-tuning is
opt-in per policy (it costs a strategy search per retrain), whatever the configured ``[risk]
retune`` says; its other settings default to the configured ``[risk]`` section.
"""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Any, Literal

import msgspec

from autoopt.config import PolicyConfig, RiskConfig
from autoopt.errors import AutooptError, ConfigError
from autoopt.strategy.params import StrategyParams

PRESETS = ("never", "nightly", "weekly", "drift", "degradation")
RISK_SUFFIX = "+risk"
RETUNE = ("off", "with_retrain")


class PolicySpec(msgspec.Struct, frozen=True, kw_only=True):
    """One policy of a backtest: its name, the core's settings, its hardware speed-up, and its
    strategy params: those in force at the start, and whether (and how) it re-tunes them."""

    name: str
    policy: PolicyConfig
    hardware_speedup: float = 1.0
    risk_retune: Literal["off", "with_retrain"] = "off"
    risk: dict[str, Any] = {}
    """Overrides of the configured ``[risk]`` settings for its re-tunes (trials, caps...)."""
    params: dict[str, float] = {}
    """The strategy params in force at the start (missing fields: neutral)."""

    def initial_params(self) -> StrategyParams:
        return StrategyParams.from_dict(self.params)

    def settings(self) -> dict[str, Any]:
        """The settings as plain data (for `--json`, the report and the run digest); the risk
        part only when the policy re-tunes or starts from non-neutral params."""
        out: dict[str, Any] = {"policy": msgspec.to_builtins(self.policy),
                               "hardware_speedup": self.hardware_speedup}
        if self.risk_retune != "off" or self.risk or self.params:
            out["risk"] = {"retune": self.risk_retune, "settings": dict(self.risk),
                           "params": self.initial_params().as_dict()}
        return out


def _off(base: PolicyConfig) -> PolicyConfig:
    return msgspec.structs.replace(
        base, schedule=None, symbols={},
        degradation=msgspec.structs.replace(base.degradation, enabled=False),
        drift=msgspec.structs.replace(base.drift, enabled=False),
    )


def preset(name: str, base: PolicyConfig | None = None) -> PolicySpec:
    """The built-in policy ``name`` over ``base`` (the configured policy's thresholds);
    ``NAME+risk``: the same with risk re-tuning."""
    if name.endswith(RISK_SUFFIX) and name[:-len(RISK_SUFFIX)] in PRESETS:
        plain = preset(name[:-len(RISK_SUFFIX)], base)
        return msgspec.structs.replace(plain, name=name, risk_retune="with_retrain")
    base = base or PolicyConfig()
    off = _off(base)
    if name == "never":
        policy = off
    elif name == "nightly":
        policy = msgspec.structs.replace(off, schedule="0 3 * * *")
    elif name == "weekly":
        policy = msgspec.structs.replace(off, schedule="0 3 * * 1")
    elif name == "drift":
        policy = msgspec.structs.replace(
            off, drift=msgspec.structs.replace(base.drift, enabled=True))
    elif name == "degradation":
        policy = msgspec.structs.replace(
            off, degradation=msgspec.structs.replace(base.degradation, enabled=True))
    else:
        raise ConfigError(f"unknown policy {name!r}; built-in: {', '.join(PRESETS)}, each "
                          f"optionally with {RISK_SUFFIX} (or a path to a .toml file)")
    return PolicySpec(name=name, policy=policy)


def from_toml(path: str | Path, base: PolicyConfig | None = None) -> PolicySpec:
    """A policy from a TOML file overriding ``base`` (see the module docstring)."""
    p = Path(path)
    if not p.is_file():
        raise ConfigError(f"policy file {str(p)!r} does not exist")
    try:
        tree = tomllib.loads(p.read_text())
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise ConfigError(f"policy file {p}: not valid TOML: {exc}") from None
    unknown = sorted(set(tree) - {"name", "hardware_speedup", "policy", "risk"})
    if unknown:
        raise ConfigError(f"policy file {p}: unknown keys {unknown}; expected name, "
                          "hardware_speedup, a [policy] and a [risk] table")
    merged = _merge(msgspec.to_builtins(base or PolicyConfig()), tree.get("policy", {}))
    try:
        policy = msgspec.convert(merged, PolicyConfig, strict=False)
    except (msgspec.ValidationError, ConfigError) as exc:
        raise ConfigError(f"policy file {p}: {exc}") from None
    speedup = tree.get("hardware_speedup", 1.0)
    if not isinstance(speedup, int | float) or isinstance(speedup, bool) or speedup <= 0:
        raise ConfigError(f"policy file {p}: hardware_speedup must be a positive number")
    name = tree.get("name", p.stem)
    if not isinstance(name, str) or not name or len(name) > 64 or any(
            c.isspace() or c in ",*>" for c in name):
        raise ConfigError(f"policy file {p}: name {name!r} must be 1-64 characters without "
                          "spaces, commas, '*' or '>'")
    retune, risk, params = _risk(p, tree.get("risk", {}))
    return PolicySpec(name=name, policy=policy, hardware_speedup=float(speedup),
                      risk_retune=retune, risk=risk, params=params)


def _risk(path: Path, table: Any) -> tuple[Any, dict[str, Any], dict[str, float]]:
    """A policy file's ``[risk]`` table: (retune, overrides of the configured [risk], params),
    each checked now so a typo fails before any retrain."""
    if not isinstance(table, dict):
        raise ConfigError(f"policy file {path}: [risk] must be a table")
    rest = dict(table)
    retune = rest.pop("retune", "off")
    if retune not in RETUNE:
        raise ConfigError(f"policy file {path}: [risk] retune = {retune!r}; expected "
                          + " or ".join(repr(r) for r in RETUNE))
    params = rest.pop("params", {})
    if not isinstance(params, dict):
        raise ConfigError(f"policy file {path}: [risk.params] must be a table")
    try:
        msgspec.convert(msgspec.to_builtins(RiskConfig()) | rest, RiskConfig)
        initial = StrategyParams.from_dict(params)
    except (msgspec.ValidationError, AutooptError) as exc:
        raise ConfigError(f"policy file {path}: [risk]: {exc}") from None
    changed = {k: v for k, v in initial.as_dict().items() if k in params}
    return retune, rest, changed


def _merge(base: dict[str, Any], over: Any) -> dict[str, Any]:
    if not isinstance(over, dict):
        raise ConfigError(f"[policy] must be a table, got {type(over).__name__}")
    out = dict(base)
    for key, value in over.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict) and key != "symbols":
            out[key] = _merge(out[key], value)
        else:
            out[key] = value
    return out


def parse_policies(text: str, base: PolicyConfig | None = None) -> list[PolicySpec]:
    """``never,nightly,path/to/policy.toml`` → policies, names unique."""
    items = [t.strip() for t in text.split(",")]
    if not text.strip() or any(not t for t in items):
        raise ConfigError(f"--policies {text!r}: give a comma-separated list, e.g. "
                          "never,nightly,drift")
    specs = [from_toml(t, base) if t.endswith(".toml") else preset(t, base) for t in items]
    names = [s.name for s in specs]
    dupes = sorted({n for n in names if names.count(n) > 1})
    if dupes:
        raise ConfigError(f"--policies: policy names must be unique, repeated: {dupes}")
    return specs


__all__ = ["PRESETS", "RETUNE", "RISK_SUFFIX", "PolicySpec", "from_toml", "parse_policies",
           "preset"]
