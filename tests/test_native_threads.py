"""The native thread switch (AUTOOPT_THREADS / set_native_threads): read, validated, obeyed,
and without effect on results."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator

import numpy as np
import polars as pl
import pytest

from autoopt import _native
from autoopt.config import load_config
from autoopt.drift import ks_2samp
from autoopt.errors import ConfigError
from autoopt.features import ohlcv_features
from autoopt.hashing import buckets
from autoopt.runtime import native_threads, set_native_threads

SPEC = ["sma_20", "ema_12", "rsi_14", "atr_14", "stddev_20", "roc_10", "zscore_30", "macd_12_26_9"]


@pytest.fixture
def restore_threads() -> Iterator[None]:
    try:
        yield
    finally:
        set_native_threads(None)


def _threads_in_child(value: str | None) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k != "AUTOOPT_THREADS"}
    if value is not None:
        env["AUTOOPT_THREADS"] = value
    code = "from autoopt.runtime import native_threads; print(native_threads())"
    return subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=60)


def test_env_variable_sets_the_limit() -> None:
    assert _threads_in_child("1").stdout.strip() == "1"
    assert _threads_in_child("3").stdout.strip() == "3"
    cores = str(len(os.sched_getaffinity(0)))
    assert _threads_in_child("auto").stdout.strip() == cores
    assert _threads_in_child(None).stdout.strip() == cores


def test_the_config_loader_leaves_the_variable_to_the_kernels(tmp_path) -> None:
    config = load_config(environ={"HOME": str(tmp_path), "AUTOOPT_THREADS": "1"})
    assert config.pipeline.threads >= 1


def test_bad_env_value_is_one_line_config_error() -> None:
    r = _threads_in_child("two")
    assert r.returncode != 0
    last = r.stderr.strip().splitlines()[-1]
    assert last.startswith("autoopt.errors.ConfigError: AUTOOPT_THREADS must be")
    assert "'two'" in last or '"two"' in last


def test_set_native_threads_overrides_and_validates(restore_threads: None) -> None:
    set_native_threads(1)
    assert native_threads() == 1 and _native.threads() == 1
    set_native_threads(2)
    assert native_threads() == 2
    for bad in (0, -1, 1.5, True, 10_000):
        with pytest.raises(ConfigError):
            set_native_threads(bad)  # type: ignore[arg-type]
    set_native_threads(None)
    assert native_threads() >= 1


def test_results_do_not_depend_on_the_thread_limit(restore_threads: None) -> None:
    rng = np.random.default_rng(7)
    n = 150_000
    close = 100 + np.cumsum(rng.normal(0, 0.1, n))
    df = pl.DataFrame({"high": close + 0.1, "low": close - 0.1, "close": close})
    keys = [f"user-{i}" for i in range(70_000)]
    ref, cur = rng.normal(size=150_000), rng.normal(0.01, 1, size=150_000)
    runs = []
    for limit in (1, 2):
        set_native_threads(limit)
        runs.append((ohlcv_features(df, SPEC), ohlcv_features(df, SPEC, threads=4), buckets("s", keys), ks_2samp(ref, cur)))
    (f1, f1x, b1, k1), (f2, f2x, b2, k2) = runs
    assert f1.equals(f2) and f1.equals(f1x) and f2.equals(f2x)
    assert np.array_equal(b1, b2)
    assert (k1.statistic, k1.pvalue) == (k2.statistic, k2.pvalue)
