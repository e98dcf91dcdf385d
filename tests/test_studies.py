"""Shared Optuna studies: PostgreSQL (a throwaway server of the test's own) and the NATS journal;
`autoopt worker` processes hold the trial budget exactly across all of them, and a worker
killed mid-trial leaves the study consistent (its trial failed as stale, the budget still met
by a retry)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import optuna
import pytest
from optuna.trial import TrialState

from autoopt.errors import ConfigError
from autoopt.log import NatsSettings
from autoopt.studies import configure_nats, open_storage, spent_trials
from autoopt.studies.budget import STALE, SURPLUS


def test_bad_storage_urls_are_one_line_errors() -> None:
    with pytest.raises(ConfigError, match=r"postgresql\+psycopg://"):
        open_storage("postgresql://u:pw@127.0.0.1:1/db")
    with pytest.raises(ConfigError, match="not a server URL"):
        open_storage("nats://127.0.0.1:4222")


def test_postgres_refusing_connections_is_named_without_the_password() -> None:
    with pytest.raises(ConfigError) as info:
        open_storage("postgresql+psycopg://u:hunter2@127.0.0.1:1/db")
    assert "hunter2" not in str(info.value) and "cannot open" in str(info.value)


def test_postgres_study_resumes_in_a_new_process(postgres_url: str) -> None:
    storage = open_storage(postgres_url)
    study = optuna.create_study(study_name="s", storage=storage)
    study.optimize(lambda t: t.suggest_float("x", 0, 1) ** 2, n_trials=3)
    code = ("import optuna; from autoopt.studies import open_storage; "
            f"s = optuna.load_study(study_name='s', storage=open_storage({postgres_url!r})); "
            "print(len(s.trials), s.best_value)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["3", repr(study.best_value)]


def _env(tmp_path: Path, storage: str, nats_url: str | None) -> dict[str, str]:
    env = {**os.environ, "AUTOOPT_DATA_DIR": str(tmp_path / "data"),
           "AUTOOPT_PIPELINE__OPTUNA_STORAGE": storage, "OBJECTIVE_TRIAL_S": "0.05"}
    if nats_url:
        env["AUTOOPT_NATS_URL"] = nats_url
    return env


def _worker(env: dict[str, str], objective: str, trials: int, grace: float = 20.0
            ) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "autoopt", "worker", "--study", "shared", "--create",
         "--objective", objective, "--trials", str(trials), "--grace", str(grace)],
        env=env, text=True, stdout=subprocess.PIPE, stderr=subprocess.PIPE)


def _storage(kind: str, tmp_path: Path, request: pytest.FixtureRequest) -> tuple[str, str | None]:
    if kind == "postgresql":
        return request.getfixturevalue("postgres_url"), None
    if kind == "nats":
        url = request.getfixturevalue("nats_server")
        configure_nats(NatsSettings(urls=[url]), tmp_path / "data")
        return "nats", url
    return f"sqlite:///{tmp_path / 'optuna.db'}", None


def _load(storage: str) -> optuna.Study:
    return optuna.load_study(study_name="shared", storage=open_storage(storage))


@pytest.mark.parametrize("kind", ["sqlite", "postgresql", "nats"])
def test_three_workers_hold_the_budget_exactly(kind: str, tmp_path: Path,
                                               request: pytest.FixtureRequest) -> None:
    storage, nats_url = _storage(kind, tmp_path, request)
    env = _env(tmp_path, storage, nats_url)
    procs = [_worker(env, "autoopt.testing.objectives:slow_quadratic", 8) for _ in range(3)]
    outs = [p.communicate(timeout=180) for p in procs]
    assert [p.returncode for p in procs] == [0, 0, 0], outs
    ran = [int(o.split()[2]) for o, _ in outs]
    study = _load(storage)
    spent = spent_trials(study)
    assert len(spent) == 8 and sum(ran) == 8
    assert all(t.state in (TrialState.COMPLETE, TrialState.PRUNED) for t in spent)
    others = [t for t in study.trials if t not in spent]
    assert all(t.system_attrs.get(SURPLUS) for t in others)  # never run: at most one per worker
    assert len(others) <= 3


@pytest.mark.parametrize("kind", ["postgresql", "nats"])
def test_a_worker_killed_mid_trial_leaves_the_study_consistent(
        kind: str, tmp_path: Path, request: pytest.FixtureRequest) -> None:
    storage, nats_url = _storage(kind, tmp_path, request)
    env = _env(tmp_path, storage, nats_url)
    flag = tmp_path / "hung"
    victim = _worker({**env, "OBJECTIVE_HANG_FLAG": str(flag)},
                     "autoopt.testing.objectives:hang_once", 6)
    deadline = time.monotonic() + 60
    while not flag.exists():  # the victim's first trial has started
        assert victim.poll() is None and time.monotonic() < deadline, victim.stderr
        time.sleep(0.05)
    victim.send_signal(signal.SIGKILL)
    victim.wait(10)
    survivor = _worker(env, "autoopt.testing.objectives:quadratic", 6, grace=2.0)
    out, err = survivor.communicate(timeout=120)
    assert survivor.returncode == 0, err
    study = _load(storage)
    killed = next(t for t in study.trials if t.number == int(flag.read_text()))
    assert killed.state == TrialState.FAIL and killed.system_attrs.get(STALE)
    spent = spent_trials(study)
    assert len(spent) == 6 and all(t.state != TrialState.RUNNING for t in spent)
    assert not study.get_trials(states=(TrialState.RUNNING,))


def test_pruning_sees_the_other_workers_trials(tmp_path: Path) -> None:
    """Each trial reports its number: once five trials completed (the median pruner's start-up,
    from both workers), later ones are pruned against the other worker's trials too."""
    storage = f"sqlite:///{tmp_path / 'optuna.db'}"
    (tmp_path / "barrier").mkdir()
    env = {**_env(tmp_path, storage, None), "OBJECTIVE_TRIAL_S": "0.15",
           "OBJECTIVE_BARRIER": str(tmp_path / "barrier"), "OBJECTIVE_WORKERS": "2"}
    procs = [_worker(env, "autoopt.testing.objectives:rising", 12) for _ in range(2)]
    outs = [p.communicate(timeout=180) for p in procs]
    assert [p.returncode for p in procs] == [0, 0], outs
    spent = spent_trials(_load(storage))
    completed = [t for t in spent if t.state == TrialState.COMPLETE]
    pruned = [t for t in spent if t.state == TrialState.PRUNED]
    assert len(spent) == 12 and len(completed) >= 5 and pruned  # pruned trials count
    across = [t for t in pruned if any(c.number < t.number and c.user_attrs["pid"]
                                       != t.user_attrs["pid"] for c in completed)]
    assert across  # pruned in one worker against trials another worker completed


@pytest.mark.parametrize(("args", "expected"), [
    (["--objective", "no_such_module:f", "--study", "s", "--create"], "no_such_module"),
    (["--objective", "autoopt.testing.objectives", "--study", "s", "--create"],
     "expected module:function"),
    (["--objective", "autoopt.testing.objectives:quadratic", "--study", "missing"],
     "no study 'missing'"),
])
def test_worker_bad_input_is_one_line(tmp_path: Path, args: list[str], expected: str) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("AUTOOPT_")}
    env.update(AUTOOPT_DATA_DIR=str(tmp_path),
               AUTOOPT_PIPELINE__OPTUNA_STORAGE=f"sqlite:///{tmp_path / 'o.db'}")
    out = subprocess.run([sys.executable, "-m", "autoopt", "worker", "--trials", "2", *args],
                         env=env, capture_output=True, text=True, timeout=120)
    lines = out.stderr.strip().splitlines()
    assert out.returncode == 2 and len(lines) == 1 and "Traceback" not in out.stderr, out.stderr
    assert lines[0].startswith("error: ") and expected in lines[0]


def test_worker_finds_an_objective_module_in_the_working_directory(tmp_path: Path) -> None:
    """The installed `autoopt` script (not `python -m`, whose sys.path has the working directory)
    imports `--objective mypkg.objectives:score` from the directory it runs in, as docs/deploy.md
    shows it."""
    script = Path(sys.executable).with_name("autoopt")
    assert script.is_file(), f"no console script beside {sys.executable}"
    (tmp_path / "mypkg").mkdir()
    (tmp_path / "mypkg" / "__init__.py").write_text("")
    (tmp_path / "mypkg" / "objectives.py").write_text(
        "def score(trial):\n    return (trial.suggest_float('x', -1, 1) - 0.5) ** 2\n")
    env = {k: v for k, v in os.environ.items() if not k.startswith("AUTOOPT_")}
    env.pop("PYTHONPATH", None)
    env.update(AUTOOPT_DATA_DIR=str(tmp_path / "data"),
               AUTOOPT_PIPELINE__OPTUNA_STORAGE=f"sqlite:///{tmp_path / 'o.db'}")
    out = subprocess.run([str(script), "worker", "--study", "s", "--create", "--trials", "3",
                          "--objective", "mypkg.objectives:score"],
                         cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert "worker ran 3 trial(s) of s" in out.stdout


def test_sqlite_study_storage_uses_the_write_ahead_log(tmp_path) -> None:
    import sqlite3

    from autoopt.studies.storage import open_storage

    path = tmp_path / "wal.db"
    storage = open_storage(f"sqlite:///{path}")
    with storage.engine.connect() as conn:
        sync = conn.exec_driver_sql("PRAGMA synchronous").scalar()
    assert sync == 1  # NORMAL (FULL is 2)
    raw = sqlite3.connect(path)
    try:
        assert raw.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    finally:
        raw.close()
