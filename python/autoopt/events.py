"""Every fact autoopt records, as msgspec Structs in one tagged union, msgpack on the wire.

Why: the event log is the source of truth; every projection is rebuilt by replaying these types,
so they must decode fast, typed, and stay readable for years.

Wire format
    A msgpack map with a ``"type"`` key holding the tag ``"<category>.<type>"`` (``"market.bars"``,
    ``"model.released"``...) plus the fields by name. `encode` / `decode` use one reused Encoder and
    one Decoder typed with the whole union (`AnyEvent`).

Common fields (on `Event`)
    ``event_id`` (see `autoopt.ids`), ``ts_event`` (when it happened, Unix ns), ``ts_init`` (when this
    object was built, Unix ns), ``schema`` (version of this type's layout), ``causation_id`` (the
    event this one reacts to), ``correlation_id`` (the first event of the chain).

Subjects
    The tag's category and type, plus the value of the type's ``scope_field`` (a symbol, an
    experiment, a study...), give the subject ``autoopt.<category>.<type>.<scope>``; see
    `autoopt.subjects`.

Schema evolution (rules every change must follow)
    * A new field goes at the end of its class and has a default, so old payloads still decode.
    * A field's type never changes and a field is never renamed; add a new field instead.
    * Removing a field: keep it, stop writing it (decoders ignore unknown keys, so new payloads also
      decode in old readers).
    * A new event type is a new class with a new tag, appended to `ALL_EVENT_TYPES`.
    * ``schema`` is bumped when a field's meaning changes, so readers can tell layouts apart.

Validation
    Every field obeys the rules of `autoopt.fieldrules` (non-empty ids, timestamps in
    1970..2200 as Unix ns, finite numbers where NaN/inf means nothing, known enums, symbols and
    scope names by `autoopt.symbols`). They run in ``__post_init__``, i.e. when an event is built
    (``new``, the constructor, ``msgspec.structs.replace``) and when it is decoded (msgspec calls
    it; `decode` then raises DataError), and again on append (`Event.validate`). A broken field is
    a DataError naming the type and the field: ``SignalEmitted.symbol '' must not be empty``.
    Each type lists its rules in ``_rules`` (the common fields' first); batch columns are bytes
    and are checked for shape only (their values are the data sources' to validate).

Batches
    `BarBatch` and `FeatureBatch` carry columns as raw little-endian bytes (int64 timestamps,
    float64 values): decoding a batch is a memory copy, and `arrays()` / `to_polars()` view them
    without per-value work. Build them with `from_arrays`.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, ClassVar, Self, Union

import msgspec
import numpy as np

from autoopt.clock import Clock
from autoopt.errors import DataError
from autoopt.fieldrules import (
    Rules,
    compile_rules,
    count_problem,
    enum,
    finite_map_problem,
    finite_problem,
    id_problem,
    kind_problem,
    name_problem,
    nonneg_finite_problem,
    opt_finite_problem,
    opt_id_problem,
    opt_name_problem,
    opt_nonneg_finite_problem,
    opt_sha256_problem,
    opt_symbol_problem,
    schema_problem,
    sha256_problem,
    shown,
    symbol_or_all_problem,
    symbol_problem,
    text_problem,
    timestamp_problem,
    unit_interval_problem,
)
from autoopt.ids import derived_event_id, new_event_id

if TYPE_CHECKING:
    import polars as pl


_COMMON: Rules = (
    ("event_id", id_problem),
    ("ts_event", timestamp_problem),
    ("ts_init", timestamp_problem),
    ("schema", schema_problem),
    ("causation_id", opt_id_problem),
    ("correlation_id", opt_id_problem),
)

SIGNAL_SIDES = ("long", "short", "flat")
FILL_SIDES = ("buy", "sell")
TRADE_SIDES = ("long", "short", "buy", "sell")
TRIAL_STATES = ("COMPLETE", "PRUNED", "FAIL", "RUNNING", "WAITING")  # Optuna's TrialState names
ASSIGNMENT_UNITS = ("signal_id", "symbol", "account")


class Event(msgspec.Struct, tag_field="type", kw_only=True, frozen=True):
    """Base of every event. Concrete types set a tag ``"<category>.<type>"``, a `scope_field`
    and their field rules (``_rules``, see the module doc)."""

    event_id: str
    ts_event: int
    ts_init: int
    schema: int = 1
    causation_id: str | None = None
    correlation_id: str | None = None

    scope_field: ClassVar[str] = "symbol"
    _rules: ClassVar[Rules] = _COMMON
    _check: ClassVar[Callable[[Any], None]]

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        cls._check = staticmethod(compile_rules(cls.__name__, cls._rules))  # type: ignore[assignment]

    def __post_init__(self) -> None:
        """Runs on build, copy and decode: the first broken field raises DataError."""
        self._check(self)

    def validate(self) -> None:
        """Check every field again (the log's append paths do: an event may have been built
        around ``__post_init__``, e.g. with ``msgspec.structs.force_setattr``)."""
        self.__post_init__()

    @classmethod
    def type_tag(cls) -> str:
        """The wire tag, e.g. ``"market.bars"``."""
        tag = cls.__struct_config__.tag
        if not isinstance(tag, str):
            raise TypeError(f"{cls.__name__} is abstract: it has no event tag")
        return tag

    @classmethod
    def tag_category(cls) -> str:
        """First part of the tag (``"market"``); it selects the stream."""
        return cls.type_tag().split(".", 1)[0]

    @classmethod
    def tag_type(cls) -> str:
        """Second part of the tag (``"bars"``)."""
        return cls.type_tag().split(".", 1)[1]

    @property
    def scope(self) -> str:
        """The value that ends this event's subject (a symbol, an experiment name...)."""
        return str(getattr(self, self.scope_field))

    @classmethod
    def new(
        cls,
        *,
        clock: Clock | None = None,
        cause: Event | None = None,
        step: str | None = None,
        **fields: Any,
    ) -> Self:
        """Build an event, filling the common fields.

        ``ts_init`` is now (from `clock`, else the wall clock); ``ts_event`` defaults to it. With a
        ``cause``, ``causation_id`` / ``correlation_id`` follow the chain, and with a ``step`` the
        ``event_id`` is derived from (cause, step) so a retried step dedups in the log.
        """
        now = clock.now_ns() if clock is not None else time.time_ns()
        fields.setdefault("ts_init", now)
        fields.setdefault("ts_event", fields["ts_init"])
        if cause is not None:
            fields.setdefault("causation_id", cause.event_id)
            fields.setdefault("correlation_id", cause.correlation_id or cause.event_id)
            if step is not None:
                fields.setdefault("event_id", derived_event_id(cause.event_id, step))
        elif step is not None:
            raise ValueError(
                f"{cls.__name__}.new: step={step!r} needs a cause to derive an id from"
            )
        if "event_id" not in fields:  # ids cost a urandom call: only make one when needed
            fields["event_id"] = new_event_id(now)
        return cls(**fields)


def _i64(values: Any, name: str) -> bytes:
    arr = np.ascontiguousarray(values, dtype="<i8")
    if arr.ndim != 1:
        raise DataError(f"column {name!r} must be one-dimensional, got shape {arr.shape}")
    return arr.tobytes()


def _f64(values: Any, name: str) -> bytes:
    arr = np.ascontiguousarray(values, dtype="<f8")
    if arr.ndim != 1:
        raise DataError(f"column {name!r} must be one-dimensional, got shape {arr.shape}")
    return arr.tobytes()


_BAR_COLUMNS = ("ts", "open", "high", "low", "close", "volume")


# --------------------------------------------------------------------------------------- market


class BarBatch(Event, tag="market.bars", kw_only=True, frozen=True):
    """OHLCV bars of one symbol and timeframe, columnar: ``ts`` is little-endian int64 Unix ns of
    each bar's open, the price/volume columns little-endian float64, all of the same length."""

    symbol: str
    timeframe: str
    ts: bytes
    open: bytes
    high: bytes
    low: bytes
    close: bytes
    volume: bytes
    source: str = ""

    _rules: ClassVar[Rules] = (*_COMMON, ("symbol", symbol_problem), ("timeframe", name_problem))

    def __post_init__(self) -> None:
        super().__post_init__()
        n = len(self.ts)
        if n % 8:
            raise DataError(f"BarBatch {self.symbol}: ts byte length {n} is not a multiple of 8")
        for name in _BAR_COLUMNS[1:]:
            if len(getattr(self, name)) != n:
                raise DataError(
                    f"BarBatch {self.symbol}: column {name!r} has {len(getattr(self, name)) // 8} "
                    f"values but ts has {n // 8}"
                )

    @classmethod
    def from_arrays(
        cls,
        *,
        symbol: str,
        timeframe: str,
        ts: Any,
        open: Any,
        high: Any,
        low: Any,
        close: Any,
        volume: Any,
        **fields: Any,
    ) -> BarBatch:
        """Pack array-likes into a batch; ``ts_event`` defaults to the last bar's ts."""
        cols: dict[str, Any] = {
            "ts": _i64(ts, "ts"),
            "open": _f64(open, "open"),
            "high": _f64(high, "high"),
            "low": _f64(low, "low"),
            "close": _f64(close, "close"),
            "volume": _f64(volume, "volume"),
        }
        n = len(cols["ts"])
        for name, raw in cols.items():
            if len(raw) != n:
                raise DataError(
                    f"BarBatch {symbol}: column {name!r} has {len(raw) // 8} values, ts has {n // 8}"
                )
        if n and "ts_event" not in fields:
            fields["ts_event"] = int(np.frombuffer(cols["ts"][-8:], dtype="<i8")[0])
        return cls.new(symbol=symbol, timeframe=timeframe, **cols, **fields)

    @property
    def n_bars(self) -> int:
        return len(self.ts) // 8

    def arrays(self) -> dict[str, np.ndarray]:
        """Read-only numpy views of the columns (no copy)."""
        out = {"ts": np.frombuffer(self.ts, dtype="<i8")}
        for name in _BAR_COLUMNS[1:]:
            out[name] = np.frombuffer(getattr(self, name), dtype="<f8")
        return out

    def to_polars(self) -> pl.DataFrame:
        """A DataFrame with ``ts`` (Int64 ns) and the float columns."""
        import polars as pl

        return pl.DataFrame(self.arrays())


class FeatureBatch(Event, tag="market.features", kw_only=True, frozen=True):
    """Computed features of one symbol: ``ts`` little-endian int64 ns, ``values`` little-endian
    float64 in column-major order (all rows of ``columns[0]``, then ``columns[1]``...).
    With ``release_id`` set, the rows are the training reference of that release (drift
    baselines compare live batches against it)."""

    symbol: str
    feature_set: str
    columns: list[str]
    ts: bytes
    values: bytes
    feature_set_version: str = ""
    release_id: str | None = None  # set: these rows are that release's training reference

    _rules: ClassVar[Rules] = (
        *_COMMON,
        ("symbol", symbol_problem),
        ("feature_set", text_problem),
        ("release_id", opt_id_problem),
    )

    def __post_init__(self) -> None:
        super().__post_init__()
        n = len(self.ts)
        if n % 8:
            raise DataError(
                f"FeatureBatch {self.symbol}: ts byte length {n} is not a multiple of 8"
            )
        if len(self.values) != n * len(self.columns):
            raise DataError(
                f"FeatureBatch {self.symbol}: values hold {len(self.values) // 8} floats, expected "
                f"{n // 8} rows x {len(self.columns)} columns"
            )

    @classmethod
    def from_arrays(
        cls, *, symbol: str, feature_set: str, ts: Any, columns: dict[str, Any], **fields: Any
    ) -> FeatureBatch:
        """Pack a ts array and ``{name: array}`` columns of equal length."""
        ts_raw = _i64(ts, "ts")
        parts = [_f64(v, k) for k, v in columns.items()]
        for name, raw in zip(columns, parts, strict=True):
            if len(raw) != len(ts_raw):
                raise DataError(
                    f"FeatureBatch {symbol}: column {name!r} has {len(raw) // 8} values, "
                    f"ts has {len(ts_raw) // 8}"
                )
        if ts_raw and "ts_event" not in fields:
            fields["ts_event"] = int(np.frombuffer(ts_raw[-8:], dtype="<i8")[0])
        return cls.new(
            symbol=symbol,
            feature_set=feature_set,
            columns=list(columns),
            ts=ts_raw,
            values=b"".join(parts),
            **fields,
        )

    @property
    def n_rows(self) -> int:
        return len(self.ts) // 8

    def arrays(self) -> dict[str, np.ndarray]:
        """``ts`` plus one read-only float64 view per column (no copy)."""
        n = self.n_rows
        flat = np.frombuffer(self.values, dtype="<f8")
        out = {"ts": np.frombuffer(self.ts, dtype="<i8")}
        for i, name in enumerate(self.columns):
            out[name] = flat[i * n : (i + 1) * n]
        return out

    def to_polars(self) -> pl.DataFrame:
        import polars as pl

        return pl.DataFrame(self.arrays())


# --------------------------------------------------------------------------------------- signal


class SignalEmitted(Event, tag="signal.emitted", kw_only=True, frozen=True):
    """The trading engine emitted a signal. ``side`` is "long", "short" or "flat"."""

    symbol: str
    signal_id: str
    side: str
    confidence: float
    release_id: str | None = None
    horizon_s: float | None = None
    price: float | None = None
    extra: dict[str, Any] = {}

    _rules: ClassVar[Rules] = (
        *_COMMON,
        ("symbol", symbol_problem),
        ("signal_id", id_problem),
        ("side", enum(SIGNAL_SIDES)),
        ("confidence", finite_problem),
        ("release_id", opt_id_problem),
        ("horizon_s", opt_nonneg_finite_problem),
        ("price", opt_finite_problem),
    )


class SignalRouted(Event, tag="signal.routed", kw_only=True, frozen=True):
    """The A/B router sent a signal to one variant of an experiment, with the variant's config
    applied. ``paper``: a shadow (challenger) signal, scored as a paper trade, never executed."""

    symbol: str
    signal_id: str
    experiment: str
    variant: str
    release_id: str
    unit_key: str = ""
    side: str = ""
    confidence: float = 0.0
    size_multiplier: float = 1.0
    paper: bool = False
    price: float | None = None
    config: dict[str, Any] = {}  # the variant's other keys (plugin-declared), as applied

    _rules: ClassVar[Rules] = (
        *_COMMON,
        ("symbol", symbol_problem),
        ("signal_id", id_problem),
        ("experiment", name_problem),
        ("variant", name_problem),
        ("release_id", id_problem),
        ("side", enum(("", *SIGNAL_SIDES))),
        ("confidence", finite_problem),
        ("size_multiplier", finite_problem),
        ("price", opt_finite_problem),
    )


class SignalsRouted(Event, tag="signal.routed_batch", kw_only=True, frozen=True):
    """The routes of one router batch, stored as one event. Why: one log write per batch
    instead of one per routed signal keeps the router's hot path light; readers unfold
    ``routes`` exactly as they would read `SignalRouted` events (each keeps its derived id, so
    a route stored twice, in two batches after a redelivery, still counts once)."""

    router: str
    routes: list[SignalRouted]  # each one validated by its own rules

    scope_field: ClassVar[str] = "router"
    _rules: ClassVar[Rules] = (*_COMMON, ("router", name_problem))


# ---------------------------------------------------------------------------------------- trade


class Fill(Event, tag="trade.fill", kw_only=True, frozen=True):
    """One execution of an order. ``side`` is "buy" or "sell"; ``fee`` in ``fee_currency``."""

    symbol: str
    trade_id: str
    side: str
    qty: float
    price: float
    fee: float = 0.0
    fee_currency: str = ""
    order_id: str = ""
    signal_id: str | None = None
    liquidity: str = ""

    _rules: ClassVar[Rules] = (
        *_COMMON,
        ("symbol", symbol_problem),
        ("trade_id", id_problem),
        ("side", enum(FILL_SIDES)),
        ("qty", finite_problem),
        ("price", finite_problem),
        ("fee", finite_problem),
        ("signal_id", opt_id_problem),
    )


class TradeOutcome(Event, tag="trade.outcome", kw_only=True, frozen=True):
    """A closed trade: what the signal earned after costs. ``return_`` is net of fees."""

    symbol: str
    trade_id: str
    side: str
    qty: float
    entry_price: float
    exit_price: float
    fees: float
    pnl: float
    return_: float = msgspec.field(name="return")
    signal_id: str | None = None
    release_id: str | None = None
    experiment: str | None = None
    variant: str | None = None
    entry_ts: int = 0
    exit_ts: int = 0

    _rules: ClassVar[Rules] = (
        *_COMMON,
        ("symbol", symbol_problem),
        ("trade_id", id_problem),
        ("side", enum(TRADE_SIDES)),
        ("qty", finite_problem),
        ("entry_price", finite_problem),
        ("exit_price", finite_problem),
        ("fees", finite_problem),
        ("pnl", finite_problem),
        ("return_", finite_problem),
        ("signal_id", opt_id_problem),
        ("release_id", opt_id_problem),
        ("experiment", opt_name_problem),
        ("variant", opt_name_problem),
        ("entry_ts", timestamp_problem),
        ("exit_ts", timestamp_problem),
    )


# -------------------------------------------------------------------------------------- metrics


class MetricsReported(Event, tag="metrics.reported", kw_only=True, frozen=True):
    """Performance over a window (e.g. "1d", "30d"): sharpe, hit_rate, drawdown..."""

    symbol: str
    window: str
    metrics: dict[str, float]
    window_start: int = 0
    window_end: int = 0
    release_id: str | None = None
    variant: str | None = None

    _rules: ClassVar[Rules] = (
        *_COMMON,
        ("symbol", symbol_problem),
        ("window", text_problem),
        ("metrics", finite_map_problem),
        ("window_start", timestamp_problem),
        ("window_end", timestamp_problem),
        ("release_id", opt_id_problem),
        ("variant", opt_name_problem),
    )


class DriftReported(Event, tag="metrics.drift", kw_only=True, frozen=True):
    """A drift detector's reading on one feature or stream of one symbol."""

    symbol: str
    stream: str
    statistic: str
    value: float
    threshold: float
    drifted: bool
    detector: str = ""
    feature: str | None = None
    details: dict[str, Any] = {}

    _rules: ClassVar[Rules] = (
        *_COMMON,
        ("symbol", symbol_problem),
        ("stream", text_problem),
        ("statistic", text_problem),
        ("value", finite_problem),
        ("threshold", finite_problem),
    )


# ------------------------------------------------------------------------------------- training


class RetrainRequested(Event, tag="training.requested", kw_only=True, frozen=True):
    """Someone (policy, operator, schedule) asked for a retrain; ``trigger`` holds the evidence."""

    symbol: str
    reason: str
    trigger: dict[str, Any] = {}
    requested_by: str = ""

    _rules: ClassVar[Rules] = (*_COMMON, ("symbol", symbol_problem))


class TrainingStarted(Event, tag="training.started", kw_only=True, frozen=True):
    """A trainer began a run."""

    symbol: str
    run_id: str
    trainer: str
    params: dict[str, Any] = {}
    data_start: int = 0
    data_end: int = 0
    n_trials: int = 0

    _rules: ClassVar[Rules] = (
        *_COMMON,
        ("symbol", symbol_problem),
        ("run_id", id_problem),
        ("trainer", text_problem),
        ("data_start", timestamp_problem),
        ("data_end", timestamp_problem),
        ("n_trials", count_problem),
    )


class TrainingFinished(Event, tag="training.finished", kw_only=True, frozen=True):
    """A training run ended; ``succeeded`` false carries ``error``."""

    symbol: str
    run_id: str
    trainer: str
    succeeded: bool
    metrics: dict[str, float] = {}
    best_params: dict[str, Any] = {}
    duration_s: float = 0.0
    n_trials: int = 0
    artifact_uri: str | None = None
    error: str | None = None

    _rules: ClassVar[Rules] = (
        *_COMMON,
        ("symbol", symbol_problem),
        ("run_id", id_problem),
        ("trainer", text_problem),
        ("duration_s", nonneg_finite_problem),
        ("n_trials", count_problem),
    )


class TrialCompleted(Event, tag="training.trial", kw_only=True, frozen=True):
    """One Optuna trial. ``state`` is Optuna's name ("COMPLETE", "PRUNED", "FAIL")."""

    study: str
    number: int
    state: str
    params: dict[str, Any] = {}
    value: float | None = None
    values: list[float] | None = None
    duration_s: float = 0.0
    symbol: str = ""
    run_id: str = ""
    user_attrs: dict[str, Any] = {}

    scope_field: ClassVar[str] = "study"
    # ``value`` is Optuna's objective: it may be +-inf there, so only its type is checked
    _rules: ClassVar[Rules] = (
        *_COMMON,
        ("study", name_problem),
        ("number", count_problem),
        ("state", enum(TRIAL_STATES)),
        ("duration_s", nonneg_finite_problem),
        ("symbol", opt_symbol_problem),
    )


class TrialLedgered(Event, tag="training.ledger", kw_only=True, frozen=True):
    """One configuration tried for a symbol, in the trial ledger the Deflated Sharpe test counts
    (`autoopt.validation.ledger`): a hyperparameter trial of any model, a feature-selection
    step, a risk search. ``days``/``returns``: its out-of-sample net returns summed per UTC day
    (days since the epoch), for clustering; empty when it has no series (pruned, failed)."""

    symbol: str
    key: str
    source: str
    run_id: str = ""
    model: str = ""
    state: str = "COMPLETE"
    sharpe: float | None = None
    days: list[int] = []
    returns: list[float] = []

    _rules: ClassVar[Rules] = (
        *_COMMON,
        ("symbol", symbol_problem),
        ("key", text_problem),
        ("source", name_problem),
        ("sharpe", opt_finite_problem),
    )


# ---------------------------------------------------------------------------------------- model


class ValidationVerdict(Event, tag="model.verdict", kw_only=True, frozen=True):
    """The release gate's decision on a challenger against the champion."""

    symbol: str
    challenger: str
    passed: bool
    reasons: list[str] = []
    metrics: dict[str, float] = {}
    champion: str | None = None
    champion_metrics: dict[str, float] = {}
    n_trials: int = 0
    deflated_sharpe: float | None = None

    # metrics may hold NaN where a statistic is undefined (no losing fold...): not checked
    _rules: ClassVar[Rules] = (
        *_COMMON,
        ("symbol", symbol_problem),
        ("challenger", id_problem),
        ("champion", opt_id_problem),
        ("n_trials", count_problem),
    )


class ModelReleased(Event, tag="model.released", kw_only=True, frozen=True):
    """A model artifact was registered (not yet serving)."""

    symbol: str
    release_id: str
    model_type: str
    sha256: str
    uri: str
    metrics: dict[str, float] = {}
    features: list[str] = []
    params: dict[str, Any] = {}
    parent: str | None = None
    run_id: str | None = None
    manifest_sha256: str = ""
    """SHA-256 of the release's ``manifest.json`` bytes: with ``sha256`` (the artifact set) the
    authority a loaded release must match (empty in releases recorded before it existed)."""
    trainer: str = ""
    """The plugin registry's trainer name that loads the artifact (``"lgbm"``, ``"tft"``...)."""

    _rules: ClassVar[Rules] = (
        *_COMMON,
        ("symbol", symbol_problem),
        ("release_id", id_problem),
        ("model_type", text_problem),
        ("sha256", sha256_problem),
        ("parent", opt_id_problem),
        ("run_id", opt_id_problem),
        ("manifest_sha256", opt_sha256_problem),
    )


class ModelPromoted(Event, tag="model.promoted", kw_only=True, frozen=True):
    """A release became the champion (``current``) for its symbol."""

    symbol: str
    release_id: str
    previous_release_id: str | None = None
    reason: str = ""

    _rules: ClassVar[Rules] = (
        *_COMMON,
        ("symbol", symbol_problem),
        ("release_id", id_problem),
        ("previous_release_id", opt_id_problem),
    )


class ModelRolledBack(Event, tag="model.rolled_back", kw_only=True, frozen=True):
    """The champion was moved back from ``from_release_id`` to ``release_id``."""

    symbol: str
    release_id: str
    from_release_id: str
    reason: str = ""

    _rules: ClassVar[Rules] = (
        *_COMMON,
        ("symbol", symbol_problem),
        ("release_id", id_problem),
        ("from_release_id", id_problem),
    )


class CanaryStarted(Event, tag="model.canary", kw_only=True, frozen=True):
    """A challenger that passed the gate went live as a canary (``release.mode = "canary"``):
    released but not the champion; ``experiment`` (champion ``champion_release_id`` vs it, in
    shadow or split) decides, and only its promotion switches ``current``. In the MODELS stream
    so a release's history shows the canary beside its verdict and release."""

    symbol: str
    release_id: str
    experiment: str
    champion_release_id: str | None = None
    shadow: bool = True

    _rules: ClassVar[Rules] = (
        *_COMMON,
        ("symbol", symbol_problem),
        ("release_id", id_problem),
        ("experiment", name_problem),
        ("champion_release_id", opt_id_problem),
    )


# ----------------------------------------------------------------------------------- experiment


class VariantSpec(msgspec.Struct, kw_only=True, frozen=True):
    """One arm of an experiment: which release serves it, its share of traffic, and the config
    the router applies to its signals (``confidence_threshold``, ``size_multiplier``, any key a
    plugin declares)."""

    name: str
    release_id: str
    weight: float
    config: dict[str, Any] = {}


def _variants_problem(value: Any) -> str | None:
    """Each arm: a scope name, a release id, a finite weight >= 0."""
    if not isinstance(value, list) or not value:
        return "must list at least one variant"
    for i, v in enumerate(value):
        if not isinstance(v, VariantSpec):
            return f"[{i}] must be a VariantSpec"
        for name, check in (
            ("name", name_problem),
            ("release_id", id_problem),
            ("weight", nonneg_finite_problem),
        ):
            problem = check(getattr(v, name))
            if problem is not None:
                return f"[{i}].{name} {shown(getattr(v, name))}{problem}"
    return None


class ExperimentCreated(Event, tag="experiment.created", kw_only=True, frozen=True):
    """An A/B experiment was defined; ``seed`` feeds the stable assignment hash."""

    experiment: str
    symbol: str
    variants: list[VariantSpec]
    seed: str
    metric: str = "return"
    hypothesis: str = ""
    min_samples: int = 0
    alpha: float = 0.05
    unit: str = "signal_id"  # what is assigned: "signal_id", "symbol" or "account"
    coverage: float = 1.0  # share of units that enter the experiment
    guardrails: dict[str, float] = {}  # max_drawdown, max_loss_streak, max_error_rate...
    max_duration_s: float = 0.0  # 0: no limit
    champion: str = ""  # the control variant; "" means the first
    shadow: bool = False  # challengers see every signal on paper; only the champion trades
    auto_decide: bool = False  # apply promote/rollback decisions instead of recommending them
    sequential_tuning: float = 5000.0  # mSPRT tuning: total trades where the interval is tightest

    scope_field: ClassVar[str] = "experiment"
    _rules: ClassVar[Rules] = (
        *_COMMON,
        ("experiment", name_problem),
        ("symbol", symbol_or_all_problem),  # "*": every symbol
        ("variants", _variants_problem),
        ("min_samples", count_problem),
        ("alpha", unit_interval_problem),
        ("unit", enum(ASSIGNMENT_UNITS)),
        ("coverage", unit_interval_problem),
        ("guardrails", finite_map_problem),
        ("max_duration_s", nonneg_finite_problem),
        ("sequential_tuning", finite_problem),
    )


class ExperimentStarted(Event, tag="experiment.started", kw_only=True, frozen=True):
    """Traffic starts flowing (also used to resume a paused experiment)."""

    experiment: str
    reason: str = ""

    scope_field: ClassVar[str] = "experiment"
    _rules: ClassVar[Rules] = (*_COMMON, ("experiment", name_problem))


class ExperimentPaused(Event, tag="experiment.paused", kw_only=True, frozen=True):
    experiment: str
    reason: str = ""

    scope_field: ClassVar[str] = "experiment"
    _rules: ClassVar[Rules] = (*_COMMON, ("experiment", name_problem))


class ExperimentConcluded(Event, tag="experiment.concluded", kw_only=True, frozen=True):
    """The experiment ended; ``winner`` is None when no variant won."""

    experiment: str
    winner: str | None
    reason: str
    statistics: dict[str, Any] = {}

    scope_field: ClassVar[str] = "experiment"
    _rules: ClassVar[Rules] = (
        *_COMMON,
        ("experiment", name_problem),
        ("winner", opt_name_problem),
    )


class VariantAssigned(Event, tag="experiment.assigned", kw_only=True, frozen=True):
    """A unit (account, strategy instance...) was assigned to a variant; ``bucket`` in [0, 1)."""

    experiment: str
    unit_key: str
    variant: str
    bucket: float

    scope_field: ClassVar[str] = "experiment"
    _rules: ClassVar[Rules] = (
        *_COMMON,
        ("experiment", name_problem),
        ("unit_key", id_problem),
        ("variant", name_problem),
        ("bucket", unit_interval_problem),
    )


# ----------------------------------------------------------------------------------------- risk


class RiskParamsUpdated(Event, tag="risk.params_updated", kw_only=True, frozen=True):
    """New risk parameters (stops, sizing, drawdown limits, weights) for a symbol."""

    symbol: str
    params: dict[str, float]
    previous: dict[str, float] = {}
    reason: str = ""
    tuner: str = ""
    release_id: str = ""
    """The registry release of these params (``<symbol>@strategy``), empty when unreleased."""
    sha256: str = ""
    """Artifact-set SHA-256 of that release: the authority its files must match."""
    model_release_id: str = ""
    """The model release these params were tuned and judged with, when known."""

    _rules: ClassVar[Rules] = (
        *_COMMON,
        ("symbol", symbol_problem),
        ("params", finite_map_problem),
        ("previous", finite_map_problem),
    )


class PortfolioWeightsReleased(Event, tag="risk.weights_released", kw_only=True, frozen=True):
    """Portfolio weights (asset -> fraction, long-only, summing to 1) that passed the 1/N gate
    (`autoopt.portfolio`), released under ``portfolio`` (the registry's ``<portfolio>@weights``)."""

    portfolio: str
    weights: dict[str, float]
    method: str
    previous: dict[str, float] = {}
    release_id: str = ""
    sha256: str = ""
    metrics: dict[str, float] = {}
    reason: str = ""

    scope_field: ClassVar[str] = "portfolio"
    _rules: ClassVar[Rules] = (
        *_COMMON,
        ("portfolio", name_problem),
        ("weights", finite_map_problem),
        ("previous", finite_map_problem),
        ("metrics", finite_map_problem),
    )


# ------------------------------------------------------------------------------------- decision


class DecisionMade(Event, tag="decision.made", kw_only=True, frozen=True):
    """The core decided something (retrain, promote, hold...) and why."""

    symbol: str
    kind: str
    reason: str
    details: dict[str, Any] = {}
    policy: str = ""
    commands: list[str] = []

    _rules: ClassVar[Rules] = (
        *_COMMON,
        ("symbol", symbol_or_all_problem),  # "*": an experiment over every symbol
        ("kind", kind_problem),
    )


# --------------------------------------------------------------------------------------- system


class ErrorRaised(Event, tag="system.error", kw_only=True, frozen=True):
    """A component failed in a way operators must see."""

    component: str
    error_type: str
    message: str
    details: dict[str, Any] = {}
    traceback: str = ""

    scope_field: ClassVar[str] = "component"
    _rules: ClassVar[Rules] = (*_COMMON, ("component", name_problem))


class DeadLettered(Event, tag="deadletter.message", kw_only=True, frozen=True):
    """A message a consumer gave up on: undecodable, or its handler failed on the last delivery.
    ``payload`` is the original bytes untouched, so it can be inspected or re-driven; a payload
    too large to be stored beside the letter's other fields (`autoopt.log.deadletter`) keeps its
    first bytes, with ``truncated`` set and the original's size and SHA-256 (the original stays
    in its stream at ``seq``)."""

    stream: str
    subject: str
    seq: int
    consumer: str
    error: str
    payload: bytes
    deliveries: int = 0
    headers: dict[str, str] = {}
    payload_size: int = 0
    """Length of the original payload (0 in letters written before it was recorded)."""
    payload_sha256: str = ""
    truncated: bool = False

    scope_field: ClassVar[str] = "stream"
    _rules: ClassVar[Rules] = (*_COMMON, ("stream", name_problem), ("seq", count_problem))


# ---------------------------------------------------------------------------------------- clock

CLOCK_SCOPE = "clock"
"""The scope (subject tail) of every `ClockTick`: one subject, whichever instance ticked."""


class ClockTick(Event, tag="metrics.tick", kw_only=True, frozen=True):
    """The wall clock reached ``ts_event`` (an aligned instant, a whole minute in the service).

    Why: the decision core's clock moves only with the events it reads, so on a quiet log a
    schedule would wait for the next event. A tick is that event, recorded: the core takes it as
    a pure clock move (no fact, no trigger), and a replay reads the same tick at the same place.

    Why ``metrics.tick``: a tick is a reading taken over time, like the other metrics; the
    METRICS stream already captures ``autoopt.metrics.>`` and CORE already sources all of it, so
    ticks reach the core without changing any existing stream's config, and METRICS' one-hour
    dedup window covers any skew between instances ticking the same minute. Build one with
    `at`: its ``event_id`` derives from the instant, so every instance appends the same id and
    the log stores the tick once (Nats-Msg-Id dedup)."""

    component: str = CLOCK_SCOPE
    """Who ticks; the service always writes ``"clock"`` (one subject for all instances)."""

    scope_field: ClassVar[str] = "component"
    _rules: ClassVar[Rules] = (*_COMMON, ("component", name_problem))

    @classmethod
    def at(cls, instant_ns: int, *, clock: Clock | None = None) -> ClockTick:
        """The tick of ``instant_ns`` (``ts_event``), built now (``ts_init``, from ``clock``),
        with the id every instance derives for that instant."""
        instant = int(instant_ns)
        return cls.new(
            clock=clock,
            ts_event=instant,
            event_id=derived_event_id(CLOCK_SCOPE, f"tick/{instant}"),
        )


# ------------------------------------------------------------------------------------- backtest


class BacktestPolicyFigures(msgspec.Struct, kw_only=True, frozen=True):
    """One policy's pooled figures in a `BacktestFinished`; ``None`` where a figure is undefined
    (no bars traded, a zero-variance path)."""

    policy: str
    sharpe: float | None = None
    total_return: float | None = None
    retrains: int = 0
    releases: int = 0
    refusals: int = 0
    failures: int = 0


def _figures_problem(value: Any) -> str | None:
    """Each policy: a non-empty name, finite (or absent) figures, counts >= 0."""
    if not isinstance(value, list):
        return "must be a list of BacktestPolicyFigures"
    for i, f in enumerate(value):
        if not isinstance(f, BacktestPolicyFigures):
            return f"[{i}] must be a BacktestPolicyFigures"
        for name, check in (
            ("policy", text_problem),
            ("sharpe", opt_finite_problem),
            ("total_return", opt_finite_problem),
            ("retrains", count_problem),
            ("releases", count_problem),
            ("refusals", count_problem),
            ("failures", count_problem),
        ):
            problem = check(getattr(f, name))
            if problem is not None:
                return f"[{i}].{name} {shown(getattr(f, name))}{problem}"
    return None


def _symbols_problem(value: Any) -> str | None:
    if not isinstance(value, list):
        return "must be a list of symbols"
    for i, s in enumerate(value):
        problem = symbol_problem(s)
        if problem is not None:
            return f"[{i}] {shown(s)}{problem}"
    return None


BACKTEST_ID_CAUSE = "backtest"
"""What a `BacktestFinished` id derives from, with the run digest as the step."""


class BacktestFinished(Event, tag="system.backtest", kw_only=True, frozen=True):
    """A policy backtest (`autoopt backtest`) finished: the one record it leaves in the live log,
    so the operators' history shows which policies were compared on what data and what each
    earned, with the run digest that identifies the run and the paths of its full outputs.

    Why ``system``: the SYSTEM stream is not a source of CORE, so the decision core never reads
    a backtest's figures as live facts. Build it with `of_run`: the id derives from the run
    digest, so a rerun of the same backtest (same digest) is stored once (SYSTEM's dedup
    window). ``period_start`` / ``period_end``: the first and last bar backtested (Unix ns)."""

    run_digest: str
    source: str = ""
    symbols: list[str] = []
    policies: list[BacktestPolicyFigures] = []
    period_start: int = 0
    period_end: int = 0
    summary: list[str] = []
    report_path: str = ""
    json_path: str = ""

    scope_field: ClassVar[str] = "run_digest"
    _rules: ClassVar[Rules] = (
        *_COMMON,
        ("run_digest", name_problem),
        ("symbols", _symbols_problem),
        ("policies", _figures_problem),
        ("period_start", timestamp_problem),
        ("period_end", timestamp_problem),
    )

    @classmethod
    def of_run(cls, run_digest: str, *, clock: Clock | None = None,
               **fields: Any) -> BacktestFinished:
        """The summary of run ``run_digest``, built now, with the id every rerun derives."""
        return cls.new(clock=clock, run_digest=run_digest,
                       event_id=derived_event_id(BACKTEST_ID_CAUSE, run_digest), **fields)


# ------------------------------------------------------------------------------------ visibility


class RetrainEvaluated(Event, tag="system.evaluation", kw_only=True, frozen=True):
    """The out-of-sample evidence behind one verdict: the challenger's and the champion's
    per-fold metrics and net-return paths on the same folds, so a retrain report can be drawn
    from the log alone, refused challengers included (they leave no artifact).

    ``ts``/``returns``/``champion_returns``: little-endian int64 Unix ns and float64 net
    returns after costs, one value per point of the concatenated out-of-sample path; a path
    longer than the cap is compounded into buckets of ``aggregated`` bars (equity exact at every
    bucket end). Why ``system``: SYSTEM is not a source of CORE, so the decision core never reads
    these bulky paths (like `BacktestFinished`). Build it with `of_paths`."""

    symbol: str
    run_id: str
    model: str
    challenger: str
    verdict_id: str = ""
    champion: str | None = None
    fold_metrics: list[dict[str, float]] = []
    champion_fold_metrics: list[dict[str, float]] = []
    ts: bytes = b""
    returns: bytes = b""
    champion_returns: bytes = b""
    periods_per_year: float = 0.0
    aggregated: int = 1

    _rules: ClassVar[Rules] = (
        *_COMMON,
        ("symbol", symbol_problem),
        ("run_id", id_problem),
        ("challenger", id_problem),
        ("champion", opt_id_problem),
        ("aggregated", count_problem),
    )

    MAX_POINTS: ClassVar[int] = 20_000

    def __post_init__(self) -> None:
        super().__post_init__()
        n = len(self.ts)
        if n % 8 or len(self.returns) != n or len(self.champion_returns) not in (0, n):
            raise DataError(
                f"RetrainEvaluated {self.symbol}: ts, returns and champion_returns must hold the "
                f"same number of 8-byte values (got {n}, {len(self.returns)}, "
                f"{len(self.champion_returns)} bytes)"
            )

    @classmethod
    def of_paths(cls, *, ts: Any, returns: Any, champion_returns: Any = None,
                 **fields: Any) -> RetrainEvaluated:
        """Pack the paths (compounding into buckets beyond `MAX_POINTS`)."""
        t = np.asarray(ts, dtype=np.int64)
        r = np.asarray(returns, dtype=np.float64)
        c = None if champion_returns is None else np.asarray(champion_returns, dtype=np.float64)
        k = max(1, -(-t.size // cls.MAX_POINTS))
        if k > 1:
            ends = np.arange(k - 1, t.size, k)
            if ends.size == 0 or ends[-1] != t.size - 1:
                ends = np.append(ends, t.size - 1)
            starts = np.concatenate(([0], ends[:-1] + 1))

            def bucket(x: np.ndarray) -> np.ndarray:
                growth = np.cumprod(1.0 + np.nan_to_num(x))
                before = np.where(starts > 0, growth[np.maximum(starts - 1, 0)], 1.0)
                return growth[ends] / before - 1.0

            t, r = t[ends], bucket(r)
            c = None if c is None else bucket(c)
        return cls.new(ts=_i64(t, "ts"), returns=_f64(r, "returns"),
                       champion_returns=b"" if c is None else _f64(c, "champion_returns"),
                       aggregated=k, **fields)

    def paths(self) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
        """(ts, challenger returns, champion returns or None) as numpy views."""
        champ = np.frombuffer(self.champion_returns, dtype="<f8") if self.champion_returns else None
        return (np.frombuffer(self.ts, dtype="<i8"), np.frombuffer(self.returns, dtype="<f8"),
                champ)


class JobProgress(Event, tag="system.progress", kw_only=True, frozen=True):
    """How far a long job (a retrain's (symbol, model) job, a backtest) has come: ``done`` of
    ``total`` steps, at ``stage``. For the CLI's bars (``--via-service`` too) and the dashboard;
    in SYSTEM, so the decision core never reads it."""

    job: str
    kind: str = "retrain"
    symbol: str = ""
    model: str = ""
    stage: str = ""
    done: int = 0
    total: int = 0
    finished: bool = False

    scope_field: ClassVar[str] = "job"
    _rules: ClassVar[Rules] = (
        *_COMMON, ("job", id_problem), ("done", count_problem), ("total", count_problem),
    )


ALERT_SEVERITIES = ("info", "warning", "critical")


class AlertRaised(Event, tag="system.alert", kw_only=True, frozen=True):
    """An alert rule fired on the event ``cause_id``: what operators were told, recorded
    whether or not a webhook delivered it (``delivered``: destination names that answered 2xx,
    ``failed``: destination -> last error)."""

    rule: str
    severity: str
    title: str
    text: str = ""
    symbol: str = ""
    cause_id: str = ""
    details: dict[str, Any] = {}
    delivered: list[str] = []
    failed: dict[str, str] = {}

    scope_field: ClassVar[str] = "rule"
    _rules: ClassVar[Rules] = (
        *_COMMON, ("rule", name_problem), ("severity", enum(ALERT_SEVERITIES)),
        ("title", text_problem),
    )


ALL_EVENT_TYPES: tuple[type[Event], ...] = (
    BarBatch,
    FeatureBatch,
    SignalEmitted,
    SignalRouted,
    Fill,
    TradeOutcome,
    MetricsReported,
    DriftReported,
    RetrainRequested,
    TrainingStarted,
    TrainingFinished,
    TrialCompleted,
    ValidationVerdict,
    ModelReleased,
    ModelPromoted,
    ModelRolledBack,
    ExperimentCreated,
    ExperimentStarted,
    ExperimentPaused,
    ExperimentConcluded,
    VariantAssigned,
    RiskParamsUpdated,
    PortfolioWeightsReleased,
    DecisionMade,
    ErrorRaised,
    DeadLettered,
    SignalsRouted,
    ClockTick,
    BacktestFinished,
    RetrainEvaluated,
    JobProgress,
    AlertRaised,
    CanaryStarted,
    TrialLedgered,
)

AnyEvent = Union[ALL_EVENT_TYPES]  # type: ignore[valid-type]  # noqa: UP007

EVENT_TYPES_BY_TAG: dict[str, type[Event]] = {t.type_tag(): t for t in ALL_EVENT_TYPES}

_encoder = msgspec.msgpack.Encoder()
_decoder: msgspec.msgpack.Decoder[Any] = msgspec.msgpack.Decoder(AnyEvent)


def encode(event: Event) -> bytes:
    """msgpack bytes of an event (the one shared Encoder)."""
    return _encoder.encode(event)


def decode(data: bytes | bytearray | memoryview) -> Event:
    """The typed event in ``data``; raises DataError naming the problem if it is not one."""
    try:
        return _decoder.decode(data)
    except msgspec.DecodeError as exc:  # ValidationError included: a field broke its rule
        raise DataError(f"payload is not a valid autoopt event: {exc}") from exc


__all__ = [
    "ALL_EVENT_TYPES",
    "ALERT_SEVERITIES",
    "AlertRaised",
    "JobProgress",
    "RetrainEvaluated",
    "EVENT_TYPES_BY_TAG",
    "AnyEvent",
    "BACKTEST_ID_CAUSE",
    "BacktestFinished",
    "BacktestPolicyFigures",
    "BarBatch",
    "CanaryStarted",
    "CLOCK_SCOPE",
    "ClockTick",
    "DeadLettered",
    "DecisionMade",
    "DriftReported",
    "ErrorRaised",
    "Event",
    "ExperimentConcluded",
    "ExperimentCreated",
    "ExperimentPaused",
    "ExperimentStarted",
    "FeatureBatch",
    "Fill",
    "MetricsReported",
    "ModelPromoted",
    "ModelReleased",
    "ModelRolledBack",
    "RetrainRequested",
    "PortfolioWeightsReleased",
    "RiskParamsUpdated",
    "ASSIGNMENT_UNITS",
    "FILL_SIDES",
    "SIGNAL_SIDES",
    "SignalEmitted",
    "SignalRouted",
    "SignalsRouted",
    "TRADE_SIDES",
    "TRIAL_STATES",
    "TradeOutcome",
    "TrainingFinished",
    "TrainingStarted",
    "TrialCompleted",
    "TrialLedgered",
    "ValidationVerdict",
    "VariantAssigned",
    "VariantSpec",
    "decode",
    "encode",
]
