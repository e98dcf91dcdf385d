"""`autoopt worker --study` joins a retrain's own study (issue 18 item 4), in SQLite, PostgreSQL
(a throwaway server of the test's own) and the NATS journal: a real worker process, started
before the retrain, reads the spec the retrain records in its study, rebuilds the same
objective from the same bars, and runs trials of the retrain's budget; the retrain's verdict is
judged on the best of every trial. A worker with another pipeline config or other bars is
refused in one line."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import optuna
import polars as pl
import pytest
from optuna.trial import TrialState

from autoopt.config import load_config
from autoopt.events import TrialCompleted
from autoopt.log import EventLog
from autoopt.pipeline import run_retrain
from autoopt.pipeline.joinspec import KEY
from autoopt.pipeline.retrain import Progress
from autoopt.redact import MASK
from autoopt.studies import configure_nats, open_storage, spent_trials
from autoopt.studies.budget import WORKER
from autoopt.synthetic import planted_bars

TRIALS = 20


def _csv(path: Path, seed: int) -> Path:
    frame = planted_bars(seed, "hourly", 0.7, n=3000)
    frame.with_columns(pl.from_epoch("ts", time_unit="ns")).write_csv(path)
    return path


def _config(tmp_path: Path, name: str, nats: str, storage: str, extra: str = "") -> Path:
    path = tmp_path / name
    path.write_text(f'data_dir = "{tmp_path / "data"}"\n[nats]\nurls = ["{nats}"]\n'
                    f'[pipeline]\nmodels = ["lgbm"]\ntrials = {TRIALS}\nthreads = 1\n'
                    f'optuna_storage = "{storage}"\nfeature_selection = false\n{extra}')
    return path


def _worker(config: Path, *args: str) -> subprocess.Popen[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("AUTOOPT_")}
    env["OMP_WAIT_POLICY"] = "PASSIVE"
    return subprocess.Popen([sys.executable, "-m", "autoopt", "worker", "--config", str(config),
                             *args], env=env, text=True, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE)


@pytest.mark.parametrize("kind", ["sqlite", "postgresql", "nats"])
async def test_a_worker_joins_the_retrains_study_and_the_budget_holds(
        kind: str, tmp_path: Path, nats_server: str, event_log: EventLog,
        request: pytest.FixtureRequest) -> None:
    storage = {"sqlite": f"sqlite:///{tmp_path / 'optuna.db'}", "nats": "nats",
               "postgresql": ""}[kind] or request.getfixturevalue("postgres_url")
    csv = _csv(tmp_path / "EDGE.csv", 7)
    cfg_path = _config(tmp_path, "autoopt.toml", nats_server, storage)
    config = load_config(str(cfg_path), environ={})
    # started first: it waits for the retrain's study and its spec, then joins at once
    worker = _worker(cfg_path, "--study", "EDGE.lgbm.*", "--wait", "600")
    me = f"{socket.gethostname()}:{worker.pid}"
    configure_nats(config.nats, config.data_dir)
    shared = optuna.storages.get_storage(open_storage(storage))
    joined: list[bool] = []

    def hold_until_the_worker_joined(rep: Progress) -> None:
        """From the tuning thread, after the retrain's first trial: wait for the worker to run
        one (so the test never depends on who is faster; bounded, never asserted on)."""
        if joined or not rep.stage.startswith("trial "):
            return
        deadline = time.monotonic() + 300
        while worker.poll() is None and time.monotonic() < deadline and not any(
                t.system_attrs.get(WORKER) == me for s in shared.get_all_studies()
                for t in shared.get_all_trials(s._study_id, deepcopy=False)):
            time.sleep(0.2)
        joined.append(True)

    try:
        summary = await run_retrain(config, source=f"file:{csv}", event_log=event_log,
                                    progress=hold_until_the_worker_joined)
        out, err = worker.communicate(timeout=600)
    finally:
        if worker.poll() is None:
            worker.kill()
    assert worker.returncode == 0, err
    (result,) = summary.results
    assert result.error is None, result.reasons
    ran = int(out.split("worker ran ")[1].split()[0])
    assert f"of {result.study}" in out
    print(f"{kind}: worker ran {ran} of {TRIALS} trials")
    study = optuna.load_study(study_name=result.study, storage=shared)
    by_worker = [t.number for t in study.trials if t.system_attrs.get(WORKER) == me]
    assert ran >= 1 and len(by_worker) == ran, out  # the worker ran trials of the budget

    assert len(spent_trials(study)) == TRIALS and result.n_trials == TRIALS  # exactly the budget
    own = [t for t in study.trials if t.system_attrs.get("surplus")]
    assert len(study.trials) - len(own) == TRIALS
    complete = [t for t in study.trials if t.state == TrialState.COMPLETE]
    best = min(complete, key=lambda t: (t.value, t.number))
    assert result.params == dict(best.params) | {
        "num_boost_round": best.user_attrs["best_iteration"]}  # the best of all trials
    # the retrain's record holds every trial of the budget, the worker's included, once each
    trial_events = [e for e in [e async for e in event_log.replay("TRAINING")]
                    if isinstance(e, TrialCompleted) and e.study == result.study]
    assert sorted(e.number for e in trial_events) == sorted(
        t.number for t in study.trials if not t.system_attrs.get("surplus"))
    spec = study.user_attrs[KEY]
    assert spec["symbol"] == "EDGE" and spec["trainer"] == "lgbm" and spec["n_trials"] == TRIALS
    assert spec["source"] == f"file:{csv}" and MASK not in str(spec)

    # ---- refused in one line: another pipeline config, other bars
    other = _config(tmp_path, "other.toml", nats_server, storage, "seed = 7\n")
    refused = _worker(other, "--study", result.study)
    _, err = refused.communicate(timeout=300)
    lines = err.strip().splitlines()
    assert refused.returncode == 2 and len(lines) == 1 and "Traceback" not in err, err
    assert "refused to join" in lines[0] and "pipeline config" in lines[0]

    (tmp_path / "other").mkdir()
    other_bars = _csv(tmp_path / "other" / "EDGE.csv", 8)  # the same symbol, other prices
    refused = _worker(cfg_path, "--study", result.study, "--source", f"file:{other_bars}")
    _, err = refused.communicate(timeout=300)
    lines = err.strip().splitlines()
    assert refused.returncode == 2 and len(lines) == 1 and "Traceback" not in err, err
    assert "EDGE" in lines[0] and ("not the same data" in lines[0] or "differ" in lines[0])
    assert len(spent_trials(study)) == TRIALS  # nothing ran


def test_a_worker_without_a_retrain_study_says_so_in_one_line(tmp_path: Path) -> None:
    cfg = tmp_path / "autoopt.toml"
    cfg.write_text(f'data_dir = "{tmp_path / "data"}"\n[pipeline]\n'
                   f'optuna_storage = "sqlite:///{tmp_path / "optuna.db"}"\n')
    proc = _worker(cfg, "--study", "EDGE.lgbm.*")
    _, err = proc.communicate(timeout=120)
    lines = err.strip().splitlines()
    assert proc.returncode == 2 and len(lines) == 1, err
    assert "no retrain study 'EDGE.lgbm.*'" in lines[0]


def test_the_join_spec_never_records_a_secret(tmp_path: Path) -> None:
    from autoopt.pipeline import joinspec

    cfg = tmp_path / "autoopt.toml"
    cfg.write_text('[pipeline]\noptuna_storage = "postgresql+psycopg://u:hunter2@db/x"\n'
                   '[service]\nsource = "file:/srv/bars"\n')
    config = load_config(str(cfg), environ={})
    bars = planted_bars(1, "hourly", 0.7, n=200)
    spec = joinspec.base_spec(config, symbol="EDGE", model="lgbm", bars=bars,
                              source="ccxt://key:s3cret@binance/EDGE")
    assert "s3cret" not in str(spec) and "hunter2" not in str(spec) and MASK in spec["source"]
    # a masked URI cannot load bars: the worker uses its own config's source (or --source)
    assert joinspec.source_of(spec, None, config) == "file:/srv/bars"
    assert joinspec.source_of(spec, "file:/elsewhere", config) == "file:/elsewhere"
    # the per-host settings (storage URL with its password, threads, budgets) are not digested
    other = load_config(str(cfg), environ={"AUTOOPT_PIPELINE__THREADS": "8",
                                           "AUTOOPT_PIPELINE__TRIALS": "99"})
    assert joinspec.config_digest(other) == spec["config_digest"]
    assert joinspec.config_digest(load_config(None, environ={
        "AUTOOPT_PIPELINE__SEED": "1"})) != spec["config_digest"]
