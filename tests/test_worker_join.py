"""`autoopt worker --study` joins a retrain's own study (issue 18 item 4): a real worker process,
started before the retrain, reads the spec the retrain records in its study, rebuilds the same
objective from the same bars, and runs trials of the retrain's budget; the retrain's verdict is
judged on the best of every trial. A worker with another pipeline config or other bars is
refused in one line."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import optuna
import polars as pl
from optuna.trial import TrialState

from autoopt.config import load_config
from autoopt.log import EventLog
from autoopt.pipeline import run_retrain
from autoopt.pipeline.joinspec import KEY
from autoopt.redact import MASK
from autoopt.studies import open_storage, spent_trials
from autoopt.synthetic import planted_bars

TRIALS = 20


def _csv(path: Path, seed: int) -> Path:
    frame = planted_bars(seed, "hourly", 0.7, n=3000)
    frame.with_columns(pl.from_epoch("ts", time_unit="ns")).write_csv(path)
    return path


def _config(tmp_path: Path, name: str, nats: str, extra: str = "") -> Path:
    path = tmp_path / name
    path.write_text(f'data_dir = "{tmp_path / "data"}"\n[nats]\nurls = ["{nats}"]\n'
                    f'[pipeline]\nmodels = ["lgbm"]\ntrials = {TRIALS}\nthreads = 1\n'
                    f'optuna_storage = "sqlite:///{tmp_path / "optuna.db"}"\n'
                    f"feature_selection = false\n{extra}")
    return path


def _worker(config: Path, *args: str) -> subprocess.Popen[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("AUTOOPT_")}
    env["OMP_WAIT_POLICY"] = "PASSIVE"
    return subprocess.Popen([sys.executable, "-m", "autoopt", "worker", "--config", str(config),
                             *args], env=env, text=True, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE)


async def test_a_worker_joins_the_retrains_study_and_the_budget_holds(
        tmp_path: Path, nats_server: str, event_log: EventLog) -> None:
    csv = _csv(tmp_path / "EDGE.csv", 7)
    cfg_path = _config(tmp_path, "autoopt.toml", nats_server)
    config = load_config(str(cfg_path), environ={})
    # started first: it waits for the retrain's study and its spec, then joins at once
    worker = _worker(cfg_path, "--study", "EDGE.lgbm.*", "--wait", "600")
    try:
        summary = await run_retrain(config, source=f"file:{csv}", event_log=event_log)
        out, err = worker.communicate(timeout=600)
    finally:
        if worker.poll() is None:
            worker.kill()
    assert worker.returncode == 0, err
    (result,) = summary.results
    assert result.error is None, result.reasons
    ran = int(out.split("worker ran ")[1].split()[0])
    assert f"of {result.study}" in out
    assert ran >= 1, out  # the worker did run trials of the retrain's budget
    print(f"worker ran {ran} of {TRIALS} trials")

    study = optuna.load_study(study_name=result.study, storage=open_storage(
        config.pipeline.optuna_storage))
    assert len(spent_trials(study)) == TRIALS and result.n_trials == TRIALS  # exactly the budget
    own = [t for t in study.trials if t.system_attrs.get("surplus")]
    assert len(study.trials) - len(own) == TRIALS
    complete = [t for t in study.trials if t.state == TrialState.COMPLETE]
    best = min(complete, key=lambda t: (t.value, t.number))
    assert result.params == dict(best.params) | {
        "num_boost_round": best.user_attrs["best_iteration"]}  # the best of all trials
    spec = study.user_attrs[KEY]
    assert spec["symbol"] == "EDGE" and spec["trainer"] == "lgbm" and spec["n_trials"] == TRIALS
    assert spec["source"] == f"file:{csv}" and MASK not in str(spec)

    # ---- refused in one line: another pipeline config, other bars
    other = _config(tmp_path, "other.toml", nats_server, "seed = 7\n")
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
