"""One typed configuration, loaded from TOML and ``AUTOOPT_*`` environment variables.

Precedence (later wins): built-in defaults < TOML file < environment.

* The TOML file is ``--config PATH``, else ``$AUTOOPT_CONFIG``, else ``./autoopt.toml`` if present.
* ``AUTOOPT_DATA_DIR`` sets ``data_dir``; ``AUTOOPT_NATS_URL`` sets ``nats.urls`` (comma-separated).
* Any other key is reachable as ``AUTOOPT_<SECTION>__<KEY>`` (double underscore between levels),
  e.g. ``AUTOOPT_PIPELINE__TRIALS=64``. Values that look like JSON lists/objects are parsed as JSON.

Validation happens once, at start; a bad or unknown key raises `ConfigError` naming the key
and where it came from.
"""

from __future__ import annotations

import difflib
import json
import os
import re
import tomllib
import types
import typing
from pathlib import Path
from typing import Annotated, Any, Literal

import msgspec

from autoopt.errors import ConfigError
from autoopt.log.connect import NatsSettings
from autoopt.redact import is_secret_name, mask_settings, redact

ENV_PREFIX = "AUTOOPT_"
_RESERVED_ENV = {
    "AUTOOPT_CONFIG",
    "AUTOOPT_DATA_DIR",
    "AUTOOPT_NATS_URL",
    "AUTOOPT_DEBUG",  # the CLI's traceback switch
    "AUTOOPT_NATS_SERVER",  # the embedded nats-server binary (autoopt.log.server)
    "AUTOOPT_FAULT_AT",  # crash tests' kill switch (autoopt.faults)
    "AUTOOPT_THREADS",  # the native kernels' thread limit (autoopt.runtime.native_threads)
}

PositiveInt = Annotated[int, msgspec.Meta(ge=1)]
NonNegInt = Annotated[int, msgspec.Meta(ge=0)]
NonNegFloat = Annotated[float, msgspec.Meta(ge=0.0)]
Fraction = Annotated[float, msgspec.Meta(ge=0.0, le=1.0)]


class _Section(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """Base for config sections: unknown keys are errors, not silently ignored."""


class LabelConfig(_Section):
    kind: Literal["direction", "triple_barrier"] = "direction"
    horizon: PositiveInt = 1
    dead_zone: NonNegFloat = 0.0
    profit_take: NonNegFloat = 1.0
    stop_loss: NonNegFloat = 1.0
    vol_window: PositiveInt = 20


class CVConfig(_Section):
    n_splits: Annotated[int, msgspec.Meta(ge=2)] = 5
    test_fraction: Annotated[float, msgspec.Meta(gt=0.0, lt=1.0)] = 0.1
    embargo_fraction: Fraction = 0.01
    min_train_fraction: Annotated[float, msgspec.Meta(gt=0.0, lt=1.0)] = 0.3


class CostsConfig(_Section):
    fees_bps: NonNegFloat = 2.0
    slippage_bps: NonNegFloat = 1.0


class GateSettings(_Section):
    margin: NonNegFloat = 0.05
    dsr_threshold: Fraction = 0.95
    min_trades: NonNegInt = 30
    metric: str = "sharpe"
    max_pbo: Fraction = 0.5
    """Refuse when the Probability of Backtest Overfitting (CSCV over the study's trials) is
    above this; 0.5 is what picking among interchangeable trials gives (docs/gate.md)."""
    holdout_min_sharpe: float = 0.0
    """Refuse when the holdout's per-period Sharpe after costs is not above this."""


class ValidationSettings(_Section):
    """How the gate validates (docs/gate.md): the scheme of the final validation, the
    untouched holdout, PBO's partitions and the trial ledger."""

    scheme: Literal["walk_forward", "cpcv"] = "walk_forward"
    holdout_fraction: Annotated[float, msgspec.Meta(ge=0.0, lt=0.5)] = 0.1
    cpcv_groups: Annotated[int, msgspec.Meta(ge=3)] = 6
    cpcv_test_groups: PositiveInt = 2
    pbo_partitions: Annotated[int, msgspec.Meta(ge=2, multiple_of=2)] = 16
    pbo: bool = True
    """Compute PBO over the study's trials (gate rule ``pbo``)."""
    ledger: bool = True
    """Count every configuration tried for the symbol (log ``training.ledger``) in the DSR's N."""
    grid: str = ""
    """Calendar-grid validation (docs/gate.md): a duration (``7d``: blocks from Monday 00:00
    UTC) whose whole blocks are the walk-forward test blocks and the holdout; the evidence then
    sees only the bars before the last boundary, so retrains within one block share it. ""
    or "off": test blocks are fractions of the rows."""


class PipelineConfig(_Section):
    models: list[str] = msgspec.field(default_factory=lambda: ["lgbm"])
    feature_set: str = "default"
    trials: PositiveInt = 32
    time_budget_s: Annotated[float, msgspec.Meta(gt=0.0)] | None = None
    pruning: bool = True
    seed: int = 42
    threads: PositiveInt = 2
    parallel_symbols: PositiveInt = 4
    """Symbols retrained side by side (each with ``threads`` fold workers): one symbol's
    one-threaded steps (features, event appends, the sampler between trials, the gate) leave a
    core idle that another's boosting fills, and with fewer symbols at a time the last one
    runs alone. Each symbol's decisions are the same whatever this is; memory grows with it
    (each symbol's rows and fold datasets); 1: one symbol after another."""
    optuna_storage: str | None = None
    """SQLAlchemy URL of Optuna's study storage; None: ``sqlite:///<data_dir>/optuna.db``."""
    pruner: Literal["median", "successive_halving", "hyperband"] = "successive_halving"
    min_completed_trials: NonNegInt = 4
    """At least this many trials run to completion, whatever the pruner: the gate picks among
    completed trials, so pruning can never starve it. The pruner acts from the first trial and
    spares a trial only when the rest of the budget would otherwise fall short of this."""
    feature_selection: bool = True
    """Keep only features with positive permutation importance under purged CV."""
    min_features: PositiveInt = 3
    validator: str = "purged_cv"
    data_policy: dict[str, Any] = msgspec.field(default_factory=dict)
    """`autoopt.data.ValidationPolicy` fields: per rule ``reject | repair | warn`` and the
    thresholds (see `autoopt.data.validate`); empty: every rule on, rejecting, at its default
    threshold. Bars are validated before they are appended to the log."""
    train_window_bars: NonNegInt = 0
    """Train on the last this many bars only (a rolling window, so a retrain after a regime
    change is not dominated by the old regime); 0: every bar available."""
    ingest_batch_rows: PositiveInt = 10_000
    history_days: PositiveInt = 365
    """How far back an exchange source fetches when the log holds no bars of a symbol yet."""
    label: LabelConfig = msgspec.field(default_factory=LabelConfig)
    cv: CVConfig = msgspec.field(default_factory=CVConfig)
    costs: CostsConfig = msgspec.field(default_factory=CostsConfig)
    gate: GateSettings = msgspec.field(default_factory=GateSettings)
    validation: ValidationSettings = msgspec.field(default_factory=ValidationSettings)


class DegradationPolicy(_Section):
    """Retrain when the mean of the last ``window`` MetricsReported values of any of ``metrics``
    drops more than ``threshold`` (relative) below the champion's baseline.

    ``source_window``: only MetricsReported whose ``window`` label equals it count (None: all).
    ``lower_is_better``: metrics where a rise is a degradation (log loss, drawdown as a positive
    number...)."""

    enabled: bool = True
    metrics: list[str] = msgspec.field(default_factory=lambda: ["accuracy", "precision", "sharpe"])
    threshold: Annotated[float, msgspec.Meta(gt=0.0)] = 0.05
    window: PositiveInt = 20
    source_window: str | None = None
    lower_is_better: list[str] = msgspec.field(default_factory=list)
    live_z_enter: Annotated[float, msgspec.Meta(gt=0.0)] = 3.5
    """Live test (docs/gate.md, `autoopt.validation.live`): a report whose window's mean
    per-trade return is this many standard errors below the champion's expected live
    distribution enters the degraded state (one retrain request)..."""
    live_z_exit: NonNegFloat = 1.0
    """... and the state returns to normal only at z >= -live_z_exit."""
    live_min_trades: PositiveInt = 30
    """Reports over fewer trades than this are not tested."""
    cbpe: bool = False
    """Estimate the champion's hit rate from its signals' confidence before outcomes arrive
    (`autoopt.validation.cbpe`) every ``cbpe_window`` signals, recorded as a ``held.cbpe``
    decision; retrain ("performance.cbpe") when it is ``cbpe_z`` standard errors below the
    release's cross-validated accuracy. Opt-in: it adds a decision every window of signals."""
    cbpe_window: Annotated[int, msgspec.Meta(ge=2)] = 200
    cbpe_z: Annotated[float, msgspec.Meta(gt=0.0)] = 3.0


DriftDetectorName = Annotated[str, msgspec.Meta(min_length=1, pattern=r"^[A-Za-z0-9_-]+$")]
"""``psi``, ``ks`` (window tests on features) or a streaming detector registered through
``autoopt_register_drift_detectors`` (built-in: ``adwin``, ``page_hinkley``); names are checked
against the plugins at start (`autoopt.core.detectors`)."""
DriftStreamName = Literal["prediction", "outcome"]


class DriftPolicy(_Section):
    """Retrain on drift.

    PSI / KS compare live FeatureBatch columns, gathered ``min_rows`` rows at a time, with the
    champion's training reference (the FeatureBatch whose ``release_id`` is the champion's).
    Streaming detectors (ADWIN, Page-Hinkley, or a plugin's) watch the prediction stream
    (SignalEmitted confidence) and the outcome stream (TradeOutcome return, or 1/0 hit when
    ``outcome_value = "hit"``); ``params.<name>`` is the table its factory's ``create`` gets
    (for the built-ins it overrides ``adwin_delta`` / ``page_hinkley_*``). ``external``: also
    act on DriftReported(drifted=true) from components other than autoopt itself."""

    enabled: bool = True
    psi_threshold: Annotated[float, msgspec.Meta(gt=0.0)] = 0.2
    ks_pvalue: Annotated[float, msgspec.Meta(gt=0.0, lt=1.0)] = 0.001
    adwin_delta: Annotated[float, msgspec.Meta(gt=0.0, lt=1.0)] = 0.002
    page_hinkley_threshold: Annotated[float, msgspec.Meta(gt=0.0)] = 50.0
    detectors: list[DriftDetectorName] = msgspec.field(
        default_factory=lambda: ["psi", "ks", "adwin", "page_hinkley"]
    )
    streams: list[DriftStreamName] = msgspec.field(
        default_factory=lambda: ["prediction", "outcome"]
    )
    psi_bins: Annotated[int, msgspec.Meta(ge=2)] = 10
    min_rows: Annotated[int, msgspec.Meta(ge=2)] = 200
    reference_max_rows: Annotated[int, msgspec.Meta(ge=2)] = 5000
    features: list[str] | None = None
    params: dict[str, dict[str, Any]] = msgspec.field(default_factory=dict)
    """``[policy.drift.params.<detector>]``: keyword arguments of that streaming detector."""
    page_hinkley_delta: NonNegFloat = 0.005
    page_hinkley_alpha: Annotated[float, msgspec.Meta(gt=0.0, le=1.0)] = 0.9999
    page_hinkley_min_instances: PositiveInt = 30
    outcome_value: Literal["return", "hit"] = "return"
    external: bool = True
    calibration: Literal["block_bootstrap", "none"] = "block_bootstrap"
    """PSI/KS thresholds for autocorrelated features (`autoopt.drift_calibration`): a column
    drifts only when its statistic passes the configured threshold *and* the block-bootstrap
    one calibrated on the champion's reference for windows of ``min_rows``."""
    false_alarm_rate: Annotated[float, msgspec.Meta(gt=0.0, lt=1.0)] = 0.05
    """Per evaluation, split between PSI and KS and across the columns (Bonferroni)."""
    bootstrap_samples: Annotated[int, msgspec.Meta(ge=20)] = 200


class SymbolPolicy(_Section):
    """Per-symbol overrides; unset fields inherit from the global policy."""

    schedule: str | None = None
    cooldown_s: NonNegFloat | None = None
    degradation: DegradationPolicy | None = None
    drift: DriftPolicy | None = None


class PolicyConfig(_Section):
    """Retrain policies of the decision core (`autoopt.core`).

    ``pending_timeout_s``: a decided retrain with no TrainingStarted after this long stops
    counting as in flight; ``running_timeout_s`` likewise for a TrainingStarted with no
    TrainingFinished (None: never). ``manual_bypasses_cooldown``: a manual RetrainRequested is not
    held back by the cooldown (it still waits for a running retrain and for a free slot).
    ``champion_event``: which event makes a release the champion whose metrics and training
    reference the degradation and drift policies compare against ("promoted": ModelPromoted, as
    the pipeline and ModelWatcher use it; "released": already ModelReleased, for logs without
    promotions). Rollbacks always do."""

    schedule: str | None = "0 3 * * *"
    cooldown_s: NonNegFloat = 6 * 3600.0
    max_concurrent: PositiveInt = 1
    pending_timeout_s: Annotated[float, msgspec.Meta(gt=0.0)] | None = 3600.0
    running_timeout_s: Annotated[float, msgspec.Meta(gt=0.0)] | None = 24 * 3600.0
    manual_bypasses_cooldown: bool = True
    champion_event: Literal["promoted", "released"] = "promoted"
    degradation: DegradationPolicy = msgspec.field(default_factory=DegradationPolicy)
    drift: DriftPolicy = msgspec.field(default_factory=DriftPolicy)
    symbols: dict[str, SymbolPolicy] = msgspec.field(default_factory=dict)


class ServiceConfig(_Section):
    """`autoopt serve`: how it consumes, where it gets training data, what it exposes."""

    durable: str = "autoopt-service"
    """Name of the shared work-queue consumer for retrain jobs (instances sharing it split jobs)."""
    http_host: str = "127.0.0.1"
    http_port: Annotated[int, msgspec.Meta(ge=0, le=65535)] = 9464
    """Port of /metrics, /healthz, /readyz (0: pick a free one)."""
    ack_wait_s: Annotated[float, msgspec.Meta(gt=0.0)] = 30.0
    max_deliver: PositiveInt = 5
    job_lease_s: NonNegFloat = 0.0
    """A retrain job's lease (JetStream KV bucket ``autoopt_jobs``) counts as stale, and another
    instance takes the job over, after this many seconds without a heartbeat (the owner refreshes
    every quarter of it; a killed owner is noticed at once). 0: max(60, 3 x ack_wait_s)."""
    checkpoint_every: PositiveInt = 1000
    """Checkpoint the decision core's state after this many events (and on shutdown)."""
    source: str = "log:"
    """Data source URI retrains read bars from (default: bars already in the event log)."""
    max_job_age_s: NonNegFloat = 3600.0
    """A retrain decision older than this when its job is picked up (e.g. decided while
    catching up on old history) is recorded as skipped instead of run (0: never skip)."""
    ready_lag: NonNegInt = 100
    """/readyz answers 503 while the core is more than this many events behind the log."""
    tick_interval_s: NonNegFloat = 60.0
    """Most seconds between the ticker's looks at the wall clock (it also wakes at each minute):
    each new minute is recorded as a `ClockTick`, so schedules fire on time on a quiet log
    (0: no ticks; schedules then fire on the first event after their instant)."""
    dashboard: bool = True
    """Serve the read-only dashboard at ``/`` (and reports under ``/reports/``) on http_port."""
    dashboard_token: str = ""
    """Bearer token the dashboard requires when http_host is not a loopback address (a secret:
    set it through AUTOOPT_SERVICE__DASHBOARD_TOKEN); without one it answers 403 there."""
    dashboard_refresh_s: Annotated[float, msgspec.Meta(gt=0.0)] = 2.0
    """How often the dashboard reads new events from the log and the page looks for them."""


class ABConfig(_Section):
    """A/B testing inside `autoopt serve`: the signal router and the experiment supervisor.

    Off by default: with it on, every `SignalEmitted` is republished by the router (to
    ``autoopt.route.live[.<experiment>.<variant>]``), so the engine must consume routed signals."""

    enabled: bool = False
    durable: str = "ab-router"
    """Name of the router's durable consumer (instances sharing it split the signals)."""
    persist_interval_s: NonNegFloat = 0.005
    """Routes of this many seconds are stored (one `SignalsRouted`) and acked together."""
    decide_interval_s: Annotated[float, msgspec.Meta(gt=0.0)] = 5.0
    """The supervisor's full analysis runs at most this often per experiment (guardrails are
    checked on every outcome)."""


class CanaryConfig(_Section):
    """The experiment a canary release starts (champion vs challenger): shadow (the challenger
    trades on paper beside the champion) or a split with ``challenger_weight`` of the traffic;
    decided by `autoopt.ab.decision` with these numbers."""

    shadow: bool = True
    challenger_weight: Annotated[float, msgspec.Meta(gt=0.0, lt=1.0)] = 0.5
    min_samples: PositiveInt = 30
    alpha: Annotated[float, msgspec.Meta(gt=0.0, lt=1.0)] = 0.05
    max_duration_s: NonNegFloat = 0.0
    """0: no limit (the experiment runs until the test or a guardrail decides)."""
    guardrails: dict[str, float] = msgspec.field(default_factory=dict)
    """`autoopt.ab.experiments.Guardrails` fields (max_drawdown, max_loss_streak...)."""
    unit: Literal["signal_id", "symbol", "account"] = "signal_id"


class ReleaseConfig(_Section):
    """How a challenger that passes the gate goes live: ``direct`` (it becomes the champion) or
    ``canary`` (it is released as a challenger and an experiment against the champion decides;
    the service's experiment supervisor, ``[ab] enabled``, applies the decision)."""

    mode: Literal["direct", "canary"] = "direct"
    canary: CanaryConfig = msgspec.field(default_factory=CanaryConfig)


class PaperConfig(_Section):
    """The paper trader (`autoopt.paper`): fills routed paper signals at the next bar's open
    with these costs and closes each after ``hold_bars`` bars, publishing a TradeOutcome per
    variant, so a shadow canary has outcomes without real orders."""

    enabled: bool = False
    fees_bps: NonNegFloat = 2.0
    slippage_bps: NonNegFloat = 1.0
    hold_bars: PositiveInt = 1
    durable: str = "paper-trader"
    live_routes: bool = False
    """Also fill experiments' live routes (a shadow canary's champion): both arms judged on
    paper alone. Off when the engine reports real outcomes for them (they would count twice)."""


class RiskConfig(_Section):
    """Strategy-parameter tuning (`autoopt.strategy.tuning`, ``autoopt tune-risk``): NSGA-II
    trials per study, the nested walk-forward's outer folds and first training share, the
    constraints (mean turnover per bar, largest exposure) and the drawdown limit the choice rule
    on the Pareto front uses (docs/risk.md)."""

    trials: PositiveInt = 100
    outer_folds: PositiveInt = 3
    min_train: Annotated[float, msgspec.Meta(ge=0.1, lt=1.0)] = 0.4
    turnover_cap: Annotated[float, msgspec.Meta(gt=0.0)] = 0.5
    leverage_cap: Annotated[float, msgspec.Meta(gt=0.0)] = 3.0
    drawdown_limit: Annotated[float, msgspec.Meta(gt=0.0, le=1.0)] = 0.25
    retune: Literal["off", "with_retrain"] = "off"
    """``with_retrain``: every retrain the service runs (on the ``[policy]`` schedule,
    degradation, drift or a request) re-tunes the symbol's params and releases them if gated."""


class RegistryConfig(_Section):
    """Where model releases live: ``local`` (the data dir) or ``nats`` (a JetStream Object Store
    for artifacts and manifests, a KV bucket for ``current``; shared by every host)."""

    backend: Literal["local", "nats"] = "local"
    bucket: str = "autoopt-models"
    current_bucket: str = "autoopt-current"


class PluginsConfig(_Section):
    disabled: list[str] = msgspec.field(default_factory=list)


class LogConfig(_Section):
    level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"
    json: bool | None = None


AlertRuleName = Literal["release", "rollback", "refusal_streak", "drift", "guardrail",
                        "dead_letter", "service_error"]
AlertSeverity = Literal["info", "warning", "critical"]


class AlertDestinationConfig(_Section):
    """One webhook (``[[alerts.destinations]]``)."""

    name: str
    url_secret: str
    """The webhook URL: a secret (a Slack URL carries its token), masked in `autoopt config`."""
    format: Literal["json", "slack"] = "json"
    min_severity: AlertSeverity = "info"
    rules: list[AlertRuleName] = msgspec.field(default_factory=list)
    """Rules this destination receives (empty: every enabled rule)."""


class AlertsConfig(_Section):
    """``[alerts]``: webhook notifications from the service (`autoopt.alerts`)."""

    enabled: bool = False
    destinations: list[AlertDestinationConfig] = msgspec.field(default_factory=list)
    rules: list[AlertRuleName] = msgspec.field(default_factory=lambda: [
        "release", "rollback", "refusal_streak", "drift", "guardrail", "dead_letter",
        "service_error"])
    refusal_streak: PositiveInt = 3
    """Alert when this many challengers of a symbol were refused in a row (and every multiple)."""
    cooldown_s: NonNegFloat = 3600.0
    """Drift, dead letters, guardrails and errors alert once per scope within this time."""
    timeout_s: Annotated[float, msgspec.Meta(gt=0.0)] = 5.0
    retries: NonNegInt = 3
    backoff_s: NonNegFloat = 1.0
    poll_s: Annotated[float, msgspec.Meta(gt=0.0)] = 2.0


class Config(_Section):
    """The whole autoopt configuration."""

    data_dir: str = ""
    symbols: list[str] = msgspec.field(default_factory=list)
    nats: NatsSettings = msgspec.field(default_factory=NatsSettings)
    pipeline: PipelineConfig = msgspec.field(default_factory=PipelineConfig)
    policy: PolicyConfig = msgspec.field(default_factory=PolicyConfig)
    service: ServiceConfig = msgspec.field(default_factory=ServiceConfig)
    ab: ABConfig = msgspec.field(default_factory=ABConfig)
    plugins: PluginsConfig = msgspec.field(default_factory=PluginsConfig)
    log: LogConfig = msgspec.field(default_factory=LogConfig)
    risk: RiskConfig = msgspec.field(default_factory=RiskConfig)
    registry: RegistryConfig = msgspec.field(default_factory=RegistryConfig)
    release: ReleaseConfig = msgspec.field(default_factory=ReleaseConfig)
    paper: PaperConfig = msgspec.field(default_factory=PaperConfig)
    alerts: AlertsConfig = msgspec.field(default_factory=AlertsConfig)

    @property
    def data_path(self) -> Path:
        return Path(self.data_dir)

    @property
    def embedded(self) -> bool:
        """True when no NATS URL is configured and autoopt runs its own server."""
        return not self.nats.urls


def default_data_dir(environ: dict[str, str] | None = None) -> Path:
    """``$XDG_DATA_HOME/autoopt`` (``~/.local/share/autoopt``) unless overridden."""
    env = os.environ if environ is None else environ
    home = env.get("HOME") or str(Path.home())
    base = env.get("XDG_DATA_HOME") or str(Path(home) / ".local" / "share")
    return Path(base) / "autoopt"


def _parse_env_value(raw: str, as_list: bool = False) -> Any:
    """JSON for values that look like it; ``A,B`` for list settings; else the string."""
    text = raw.strip()
    if text[:1] in "[{":
        try:
            return json.loads(text)
        except json.JSONDecodeError as exc:
            raise ConfigError(f"cannot parse JSON value {redact(raw)!r}: {exc}") from exc
    if as_list:
        return [item.strip() for item in text.split(",") if item.strip()]
    return raw


def _unwrap(tp: Any) -> Any:
    """The type under ``Annotated[...]`` and ``X | None``."""
    while True:
        origin = typing.get_origin(tp)
        if origin is Annotated:
            tp = typing.get_args(tp)[0]
        elif origin in (typing.Union, types.UnionType):
            args = [a for a in typing.get_args(tp) if a is not type(None)]
            if len(args) != 1:
                return tp
            tp = args[0]
        else:
            return tp


def _key_type(path: list[str]) -> Any:
    """The declared type of config key ``path`` (``["pipeline", "models"]``), None if unknown;
    ``[...]`` / ``[3]`` segments step into dict values / list items."""
    tp: Any = Config
    for key in path:
        tp = _unwrap(tp)
        origin = typing.get_origin(tp)
        if isinstance(tp, type) and issubclass(tp, msgspec.Struct):
            fields = {f.name: f.type for f in msgspec.structs.fields(tp)}
            if key not in fields:
                return None
            tp = fields[key]
        elif origin is dict or (origin is list and key.startswith("[")):
            tp = typing.get_args(tp)[-1]
        else:
            return None
    return _unwrap(tp)


def _is_list_key(path: list[str]) -> bool:
    return typing.get_origin(_key_type(path)) is list


def _env_overrides(environ: dict[str, str]) -> tuple[dict[str, Any], list[str]]:
    tree: dict[str, Any] = {}
    used: list[str] = []
    if environ.get("AUTOOPT_DATA_DIR"):
        tree["data_dir"] = environ["AUTOOPT_DATA_DIR"]
        used.append("AUTOOPT_DATA_DIR")
    if environ.get("AUTOOPT_NATS_URL"):
        urls = [u.strip() for u in environ["AUTOOPT_NATS_URL"].split(",") if u.strip()]
        tree.setdefault("nats", {})["urls"] = urls
        used.append("AUTOOPT_NATS_URL")
    for name, raw in sorted(environ.items()):
        if not name.startswith(ENV_PREFIX) or name in _RESERVED_ENV:
            continue
        path = [p.lower() for p in name[len(ENV_PREFIX) :].split("__")]
        if not all(path):
            raise ConfigError(f"environment variable {name}: empty key segment")
        node = tree
        for key in path[:-1]:
            child = node.setdefault(key, {})
            if not isinstance(child, dict):
                raise ConfigError(f"environment variable {name}: {key!r} is not a section")
            node = child
        try:
            node[path[-1]] = _parse_env_value(raw, as_list=_is_list_key(path))
        except ConfigError as exc:
            raise ConfigError(f"environment variable {name}: {exc}") from None
        used.append(name)
    return tree, used


def _merge(base: dict[str, Any], over: dict[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for key, value in over.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = _merge(out[key], value)
        else:
            out[key] = value
    return out


def _find_file(path: str | Path | None, environ: dict[str, str]) -> Path | None:
    if path is not None:
        return Path(path)
    if environ.get("AUTOOPT_CONFIG"):
        return Path(environ["AUTOOPT_CONFIG"])
    local = Path("autoopt.toml")
    return local if local.is_file() else None


def _describe(msg: str) -> str:
    # msgspec says "... - at `$.pipeline.trials`"; turn that into a dotted key name.
    if " - at `$." in msg:
        what, where = msg.rsplit(" - at `$.", 1)
        key = where.rstrip("`")
        return f"config key {key!r}: {_enum_hint(key, what)}"
    return msg


def _enum_hint(key: str, what: str) -> str:
    """For a bad enum value: the valid values and, when one is close, "did you mean X?"."""
    match = re.fullmatch(r"Invalid enum value (.+)", what)
    path = re.findall(r"\[[^\]]*\]|[^.\[]+", key)
    choices = typing.get_args(_key_type(path)) if match else ()
    if not choices:
        return what
    valid = [str(c) for c in choices]
    text = f"{what}; valid values: {', '.join(valid)}"
    given = match.group(1).strip("'\"") if match else ""
    lowered = {v.lower(): v for v in valid}
    close = difflib.get_close_matches(given.lower(), list(lowered), n=1, cutoff=0.6)
    return f"{text}; did you mean {lowered[close[0]]!r}?" if close else text


def load_config(
    path: str | Path | None = None,
    *,
    environ: dict[str, str] | None = None,
    overrides: dict[str, Any] | None = None,
) -> Config:
    """Load, merge and validate the configuration; raise `ConfigError` naming the bad key."""
    env = dict(os.environ if environ is None else environ)
    file = _find_file(path, env)
    tree: dict[str, Any] = {}
    sources = ["defaults"]
    if file is not None:
        try:
            tree = tomllib.loads(read_config_text(file))
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(f"config file {str(file)!r} is not valid TOML: {exc}") from exc
        sources.append(str(file))
    env_tree, used = _env_overrides(env)
    tree = _merge(tree, env_tree)
    if used:
        sources.append("environment (" + ", ".join(used) + ")")
    if overrides:
        tree = _merge(tree, overrides)
        sources.append("command line")
    try:
        config = msgspec.convert(tree, Config, strict=False)
    except msgspec.ValidationError as exc:
        raise ConfigError(f"{_describe(str(exc))} (sources: {'; '.join(sources)})") from None
    if isinstance(config.policy.schedule, str) and config.policy.schedule.strip().lower() in _OFF:
        config = msgspec.structs.replace(
            config, policy=msgspec.structs.replace(config.policy, schedule=None)
        )
    _check_schedules(config)
    _check_symbols(config)
    _check_grid(config)
    if not config.data_dir:
        config = msgspec.structs.replace(config, data_dir=str(default_data_dir(env)))
    return config


def read_config_text(file: Path) -> str:
    """The text of a config file: a regular file, or anything readable as one (``/dev/null``:
    empty, i.e. the defaults; a pipe such as ``--config <(...)``); ConfigError (one line) with
    the real reason otherwise: missing, a directory, a socket, unreadable, not UTF-8."""
    import stat

    where = f"config file {str(file)!r}"
    try:
        mode = file.stat().st_mode
    except FileNotFoundError:
        raise ConfigError(f"{where} does not exist") from None
    except OSError as exc:
        raise ConfigError(f"{where} cannot be read: {exc.strerror or exc}") from None
    if stat.S_ISDIR(mode):
        raise ConfigError(f"{where} is a directory, not a TOML file")
    if stat.S_ISSOCK(mode):
        raise ConfigError(f"{where} is a socket, not a TOML file")
    try:
        return file.read_bytes().decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ConfigError(f"{where} is not UTF-8 text (byte {exc.start})") from None
    except OSError as exc:
        raise ConfigError(f"{where} cannot be read: {exc.strerror or exc}") from None


_OFF = {"", "off", "none", "never"}
"""Schedule values that turn a schedule off (TOML has no null); per symbol too."""


def schedule_off(expr: str | None) -> bool:
    """True for a schedule value that means "no schedule" (None, "", "off", "none", "never")."""
    return expr is None or expr.strip().lower() in _OFF


def _check_symbols(config: Config) -> None:
    """Symbols in the config (``symbols``, ``[policy.symbols.<symbol>]`` keys) obey the one
    grammar (`autoopt.symbols`): a bad one is a ConfigError naming its key, at start."""
    from autoopt.symbols import symbol_problem

    entries = [(f"symbols[{i}]", s) for i, s in enumerate(config.symbols)]
    entries += [(f"policy.symbols.{s}", s) for s in config.policy.symbols]
    for key, symbol in entries:
        problem = symbol_problem(symbol)
        if problem is not None:
            raise ConfigError(f"config key {key!r}: symbol {symbol!r} {problem}")


def _check_grid(config: Config) -> None:
    from autoopt.validation.cv import parse_grid

    parse_grid(config.pipeline.validation.grid)


def _check_schedules(config: Config) -> None:
    from croniter import croniter

    entries = [("policy.schedule", config.policy.schedule)]
    entries += [(f"policy.symbols.{s}.schedule", p.schedule) for s, p in config.policy.symbols.items()]
    for key, expr in entries:
        if not schedule_off(expr) and not croniter.is_valid(expr):
            raise ConfigError(f"config key {key!r}: {expr!r} is not a valid cron expression")


def config_to_toml_dict(config: Config, *, masked: bool = False) -> dict[str, Any]:
    """Plain-dict form (for `autoopt config` and digests); ``masked``: secrets as ``***``
    (`autoopt.redact.mask_settings`), for anything shown to a person."""
    tree = msgspec.to_builtins(config)
    return mask_settings(tree) if masked else tree


def _toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value)
    if isinstance(value, str):
        return json.dumps(value)
    if isinstance(value, list):
        return "[" + ", ".join(_toml_value(v) for v in value) + "]"
    if isinstance(value, dict):
        return "{" + ", ".join(f"{json.dumps(k)} = {_toml_value(v)}" for k, v in value.items()) + "}"
    raise TypeError(f"cannot write {value!r} as TOML")


def to_toml(config: Config, *, masked: bool = False) -> str:
    """The config as TOML (keys whose value is None are written as comments: TOML has no null);
    ``masked``: secrets as ``***``, for printing."""
    lines: list[str] = []

    def table(name: str, data: dict[str, Any]) -> None:
        scalars = {k: v for k, v in data.items() if not isinstance(v, dict) or not v}
        subtables = {k: v for k, v in data.items() if isinstance(v, dict) and v}
        if name:
            lines.append(f"\n[{name}]")
        for key, value in scalars.items():
            if isinstance(value, dict):  # an empty table (e.g. per-symbol overrides)
                lines.append(f"{key} = {{}}")
            elif value is None and is_secret_name(key):  # say where a secret belongs instead
                env = ENV_PREFIX + "__".join([*name.split("."), key]).upper()
                lines.append(f"# {key} = (unset; a secret: set it in ${env}, not in a file)")
            elif value is None:
                lines.append(f"# {key} = (unset)")
            else:
                lines.append(f"{key} = {_toml_value(value)}")
        for key, value in subtables.items():
            table(f"{name}.{key}" if name else key, value)

    table("", config_to_toml_dict(config, masked=masked))
    return "\n".join(lines).lstrip("\n") + "\n"
