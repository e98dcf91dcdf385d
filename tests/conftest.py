"""Shared fixtures. Everything here talks to real things: a real nats-server, real files."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest

from autoopt import events as ev
from autoopt.log import EmbeddedServer, EventLog, NatsSettings
from autoopt.testing.cluster import NatsCluster


@pytest.fixture
def nats_server(tmp_path: Path) -> Iterator[str]:
    """URL of a fresh nats-server with JetStream, on a random loopback port (never 4222), its
    store in this test's tmp dir; stopped after the test."""
    server = EmbeddedServer(tmp_path / "nats-fixture")
    url = server.start()
    assert not url.endswith(":4222")
    try:
        yield url
    finally:
        server.close()


@pytest.fixture
def nats_settings(nats_server: str) -> NatsSettings:
    """Settings pointing at the fixture server, with short timeouts for tests."""
    return NatsSettings(urls=[nats_server], request_timeout_s=5.0, connect_timeout_s=5.0)


@pytest.fixture
async def event_log(nats_settings: NatsSettings) -> AsyncIterator[EventLog]:
    """An EventLog connected to the fixture server, streams created."""
    log = await EventLog.connect(nats_settings)
    try:
        yield log
    finally:
        await log.close()


@pytest.fixture
def sample_events() -> list[ev.Event]:
    """One instance of every event type in `autoopt.events.ALL_EVENT_TYPES`, with non-default
    values in optional fields so a round trip that dropped them would show."""
    cause = ev.SignalEmitted.new(
        symbol="BTCUSDT",
        signal_id="sig-1",
        side="long",
        confidence=0.7,
        release_id="r1",
        horizon_s=60.0,
        price=42000.5,
        extra={"k": 1, "nested": {"a": [1, 2]}},
    )
    samples = [
        cause,
        ev.BarBatch.from_arrays(
            symbol="BTCUSDT",
            timeframe="1m",
            ts=[60_000_000_000 * i for i in range(5)],
            open=[1.0, 2.0, 3.0, 4.0, 5.0],
            high=[1.5, 2.5, 3.5, 4.5, 5.5],
            low=[0.5, 1.5, 2.5, 3.5, 4.5],
            close=[1.2, 2.2, 3.2, 4.2, 5.2],
            volume=[10.0, 20.0, 30.0, 40.0, 50.0],
            source="test",
        ),
        ev.FeatureBatch.from_arrays(
            symbol="BTCUSDT",
            feature_set="default",
            ts=[1, 2, 3],
            columns={"rsi": [30.0, 40.0, 50.0], "ret": [0.1, -0.2, 0.3]},
        ),
        ev.SignalRouted.new(
            cause=cause,
            step="route",
            symbol="BTCUSDT",
            signal_id="sig-1",
            experiment="exp-1",
            variant="b",
            release_id="r2",
            unit_key="acct-9",
        ),
        ev.SignalsRouted.new(
            router="ab-router",
            routes=[
                ev.SignalRouted.new(
                    cause=cause, step="route-batch", symbol="BTCUSDT", signal_id="sig-1",
                    experiment="exp-1", variant="a", release_id="r1", paper=True,
                    config={"leverage": 2},
                )
            ],
        ),
        ev.Fill.new(
            symbol="BTCUSDT",
            trade_id="t1",
            side="buy",
            qty=0.5,
            price=42001.0,
            fee=0.2,
            fee_currency="USDT",
            order_id="o1",
            signal_id="sig-1",
            liquidity="taker",
        ),
        ev.TradeOutcome.new(
            symbol="BTCUSDT",
            trade_id="t1",
            side="long",
            qty=0.5,
            entry_price=42001.0,
            exit_price=42100.0,
            fees=0.4,
            pnl=49.1,
            return_=0.0023,
            signal_id="sig-1",
            release_id="r1",
            experiment="exp-1",
            variant="a",
            entry_ts=1,
            exit_ts=2,
        ),
        ev.MetricsReported.new(
            symbol="BTCUSDT", window="1d", metrics={"sharpe": 1.2, "hit_rate": 0.55}, variant="a"
        ),
        ev.DriftReported.new(
            symbol="BTCUSDT",
            stream="features",
            statistic="psi",
            value=0.31,
            threshold=0.2,
            drifted=True,
            detector="psi",
            feature="rsi",
            details={"bins": 10},
        ),
        ev.RetrainRequested.new(
            symbol="BTCUSDT", reason="drift", trigger={"psi": 0.31}, requested_by="policy"
        ),
        ev.TrainingStarted.new(
            symbol="BTCUSDT", run_id="run-1", trainer="lgbm", params={"lr": 0.1}, n_trials=8
        ),
        ev.TrainingFinished.new(
            symbol="BTCUSDT",
            run_id="run-1",
            trainer="lgbm",
            succeeded=False,
            error="boom",
            duration_s=3.5,
        ),
        ev.TrialCompleted.new(
            study="BTCUSDT-lgbm",
            number=3,
            state="COMPLETE",
            params={"num_leaves": 31},
            value=0.61,
            duration_s=1.25,
            symbol="BTCUSDT",
        ),
        ev.TrialLedgered.new(
            symbol="BTCUSDT", key="BTCUSDT-lgbm#3", source="trial", run_id="run-1",
            model="lgbm", sharpe=0.02, days=[20000, 20001], returns=[0.01, -0.002],
        ),
        ev.ValidationVerdict.new(
            symbol="BTCUSDT",
            challenger="r2",
            champion="r1",
            passed=False,
            reasons=["dsr 0.80 < 0.95"],
            metrics={"sharpe": 1.1},
            n_trials=32,
            deflated_sharpe=0.8,
        ),
        ev.ModelReleased.new(
            symbol="BTCUSDT",
            release_id="r2",
            model_type="lgbm",
            sha256="ab" * 32,
            uri="file:///models/r2",
            features=["rsi", "ret"],
            parent="r1",
        ),
        ev.ModelPromoted.new(symbol="BTCUSDT", release_id="r2", previous_release_id="r1"),
        ev.ModelRolledBack.new(
            symbol="BTCUSDT", release_id="r1", from_release_id="r2", reason="drawdown"
        ),
        ev.CanaryStarted.new(
            symbol="BTCUSDT", release_id="r3", experiment="canary/BTCUSDT/r3",
            champion_release_id="r1", shadow=False,
        ),
        ev.ExperimentCreated.new(
            experiment="exp-1",
            symbol="BTCUSDT",
            variants=[
                ev.VariantSpec(name="a", release_id="r1", weight=0.5),
                ev.VariantSpec(name="b", release_id="r2", weight=0.5),
            ],
            seed="s1",
        ),
        ev.ExperimentStarted.new(experiment="exp-1"),
        ev.ExperimentPaused.new(experiment="exp-1", reason="operator"),
        ev.ExperimentConcluded.new(
            experiment="exp-1", winner="b", reason="msprt", statistics={"p": 0.01}
        ),
        ev.VariantAssigned.new(experiment="exp-1", unit_key="acct-9", variant="b", bucket=0.73),
        ev.RiskParamsUpdated.new(
            symbol="BTCUSDT", params={"stop": 0.02}, previous={"stop": 0.03}, tuner="optuna",
            release_id="p1", sha256="ab" * 32, model_release_id="r1",
        ),
        ev.PortfolioWeightsReleased.new(
            portfolio="core", weights={"A": 0.6, "B": 0.4}, method="hrp", previous={"A": 0.5},
            release_id="w1", sha256="cd" * 32, metrics={"sharpe": 1.2}, reason="gate passed",
        ),
        ev.DecisionMade.new(
            symbol="BTCUSDT", kind="retrain", reason="drift", details={"psi": 0.31}
        ),
        ev.ErrorRaised.new(
            component="trainer.lgbm", error_type="ValueError", message="bad", traceback="tb"
        ),
        ev.DeadLettered.new(
            stream="SIGNALS",
            subject="autoopt.signal.emitted.X",
            seq=7,
            consumer="svc",
            error="DataError: bad",
            payload=b"\x00\xffraw",
            deliveries=3,
        ),
        ev.ClockTick.at(1_700_000_040_000_000_000),
        ev.BacktestFinished.of_run(
            "0123456789abcdef0123456789abcdef",
            source="file:bars.csv",
            symbols=["BTCUSDT"],
            policies=[
                ev.BacktestPolicyFigures(policy="never", sharpe=0.4, total_return=0.12,
                                         releases=1),
                ev.BacktestPolicyFigures(policy="weekly", sharpe=None, retrains=9, releases=4,
                                         refusals=5, failures=1),
            ],
            period_start=1_600_000_000_000_000_000,
            period_end=1_700_000_000_000_000_000,
            summary=["No policy is distinguishable from never after costs."],
            report_path="/tmp/report.html",
            json_path="/tmp/result.json",
        ),
        ev.RetrainEvaluated.of_paths(
            symbol="BTCUSDT", run_id="run-1", model="lgbm", challenger="r2", champion="r1",
            verdict_id="v-1", fold_metrics=[{"sharpe": 0.4}, {"sharpe": -0.1}],
            champion_fold_metrics=[{"sharpe": 0.2}, {"sharpe": 0.1}],
            ts=[1_700_000_000_000_000_000, 1_700_000_060_000_000_000], returns=[0.01, -0.02],
            champion_returns=[0.0, 0.005], periods_per_year=525_600.0,
        ),
        ev.JobProgress.new(job="run-1", symbol="BTCUSDT", model="lgbm", stage="trial 3",
                           done=4, total=9, finished=True),
        ev.AlertRaised.new(rule="refusal_streak", severity="warning", title="3 refusals",
                           text="BTCUSDT refused 3 challengers", symbol="BTCUSDT", cause_id="v-1",
                           details={"streak": 3}, delivered=["ops"], failed={"slack": "500"}),
    ]
    return samples


# ------------------------------------------------------------------ restartable servers
# (NatsNode / NatsCluster live in autoopt.testing.cluster, shared with benches/bench_faults.py)


@pytest.fixture
def nats_cluster(tmp_path: Path) -> Iterator[NatsCluster]:
    """A 3-node loopback JetStream cluster (servers n1..n3, cluster ``autoopt-test``, stores in
    this test's tmp dir) with a meta leader elected; every node is killed after the test."""
    cluster = NatsCluster(tmp_path / "cluster", size=3)
    try:
        cluster.start()
        yield cluster
    finally:
        cluster.close()


@pytest.fixture
def nats_node(tmp_path: Path) -> Iterator[NatsCluster]:
    """One JetStream nats-server on a fixed port and store dir that a test can kill -9 and
    restart as the same server (``nats_node.kill("n1")``, ``nats_node.restart("n1")``)."""
    node = NatsCluster(tmp_path / "node", size=1)
    try:
        node.start()
        yield node
    finally:
        node.close()


@pytest.fixture
def postgres_url() -> Iterator[str]:
    """URL (postgresql+psycopg://) of a throwaway PostgreSQL of this test's own: initdb + pg_ctl
    in a fresh temp dir on a free loopback port; stopped and removed after the test."""
    from autoopt.testing.postgres import PostgresServer

    server = PostgresServer()
    try:
        yield server.start()
    finally:
        server.stop()


@pytest.fixture(scope="session")
def story_log(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[dict[str, str], Any]]:
    """(CLI environment, `autoopt.testing.story.Story`) of a session-wide nats-server holding one
    symbol's real history (a decision, a real retrain that released, drift, a refusal); for
    the visibility tests, which read it (and only ever add events of other symbols)."""
    import asyncio

    from autoopt.testing.story import build_story, story_config

    root = tmp_path_factory.mktemp("story")
    server = EmbeddedServer(root / "nats")
    url = server.start()
    config = story_config(str(root / "data"), [url])

    async def build() -> Any:
        log = await EventLog.connect(config.nats)
        try:
            await log.ensure_streams()
            return await build_story(config, log)
        finally:
            await log.close()

    try:
        story = asyncio.run(build())
        yield {"AUTOOPT_NATS_URL": url, "AUTOOPT_DATA_DIR": str(root / "data")}, story
    finally:
        server.close()
