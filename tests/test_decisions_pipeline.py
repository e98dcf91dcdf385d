"""Issue 16 through the real pipeline: the holdout is untouched until the final check, CPCV
puts a path distribution in the verdict, and the trial ledger counts across two retrains."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import msgspec
import numpy as np
import polars as pl

from autoopt.config import Config, PipelineConfig
from autoopt.events import TrialLedgered, ValidationVerdict
from autoopt.log import EventLog
from autoopt.pipeline import run_retrain
from autoopt.pipeline.candidate import fit_candidate, judge
from autoopt.pipeline.dataset import build_dataset, validation_policy
from autoopt.pipeline.evidence import holdout_split
from autoopt.runtime import open_plugins
from autoopt.synthetic import planted_bars


def _config(tmp_path: Path, **pipeline: object) -> Config:
    fields = {"trials": 2, "pruning": False, "threads": 1, **pipeline}
    return msgspec.structs.replace(Config(data_dir=str(tmp_path / "data")),
                                   pipeline=msgspec.convert(fields, PipelineConfig))


def _fit(cfg: Config, ds):  # noqa: ANN001, ANN202
    plugins = open_plugins(cfg)
    return fit_candidate(cfg, ds, plugins.trainer("lgbm"),
                         plugins.component("validator", "purged_cv"), n_trials=2,
                         study_of=lambda feats: "s", model="lgbm")


def _dataset(cfg: Config, bars: pl.DataFrame):  # noqa: ANN202
    fs = open_plugins(cfg).component("feature_set", "default")
    return build_dataset("EDGE", bars, fs, cfg.pipeline.label, validation_policy({}))


def test_poisoned_holdout_labels_change_nothing_before_the_final_check(tmp_path: Path) -> None:
    cfg = _config(tmp_path)
    ds = _dataset(cfg, planted_bars(3, "hourly", 0.65, n=900))
    split = holdout_split(cfg, ds)
    assert split is not None and split.size == round(0.1 * ds.n_rows)
    poisoned_y = ds.y.copy()
    poisoned_y[split.start:] = 1 - poisoned_y[split.start:]  # every holdout label flipped
    poisoned = replace(ds, y=poisoned_y, label=np.where(
        np.arange(ds.n_rows) >= split.start, -ds.label, ds.label).astype(np.int8))
    a = _fit(cfg, ds)
    b = _fit(cfg, poisoned)
    assert a.selection.selected == b.selection.selected
    assert a.tuned.params == b.tuned.params
    assert [t.value for t in a.tuned.trials] == [t.value for t in b.tuned.trials]
    np.testing.assert_array_equal(a.validation.returns, b.validation.returns)
    assert a.task.X.shape[0] == b.task.X.shape[0] == split.dev_end
    assert a.evidence is not None and b.evidence is not None
    assert a.evidence.holdout == b.evidence.holdout  # the holdout is scored on returns
    # ... while poisoning the holdout's *returns* moves the holdout figures and nothing else
    fwd = ds.forward_returns.copy()
    fwd[split.start:] = -fwd[split.start:]
    c = _fit(cfg, replace(ds, forward_returns=fwd))
    np.testing.assert_array_equal(a.validation.returns, c.validation.returns)
    assert c.evidence is not None and a.evidence.holdout is not None
    assert c.evidence.holdout is not None
    assert c.evidence.holdout.sharpe != a.evidence.holdout.sharpe
    verdict, metrics = judge(cfg, a, None)
    codes = verdict.codes
    assert "holdout_pass" in codes or "holdout_failed" in codes
    assert metrics["gate/holdout_rows"] == split.size
    assert metrics["gate/development_rows"] == split.dev_end


def test_cpcv_scheme_reports_the_path_distribution(tmp_path: Path) -> None:
    cfg = _config(tmp_path, validation={"scheme": "cpcv", "cpcv_groups": 5,
                                        "cpcv_test_groups": 2})
    ds = _dataset(cfg, planted_bars(5, "hourly", 0.65, n=900))
    cand = _fit(cfg, ds)
    assert len(cand.task.folds) == 10  # C(5, 2) splits
    assert cand.evidence is not None and len(cand.evidence.path_sharpes) == 4  # 10*2/5
    verdict, metrics = judge(cfg, cand, None)
    assert metrics["gate/cpcv_paths"] == 4
    assert metrics["gate/path_sr_min"] <= metrics["gate/path_sr_median"] <= metrics[
        "gate/path_sr_max"]
    assert [metrics[f"cpcv_path_sr/{i}"] for i in range(4)] == cand.evidence.path_sharpes
    # the DSR is computed on one whole path (the median one): every development row once
    assert cand.validation.returns.size == cand.task.X.shape[0]
    assert verdict.stats["n_obs"] == cand.task.X.shape[0]


async def test_ledger_counts_trials_across_two_retrains(tmp_path: Path,
                                                        event_log: EventLog) -> None:
    cfg = _config(tmp_path)
    bars = planted_bars(7, "hourly", 0.6, n=1_300)
    counts = []
    for cut in (1_100, 1_300):  # two nightly runs, each with the bars known then
        (tmp_path / str(cut)).mkdir()
        path = tmp_path / str(cut) / "EDGE.csv"
        bars[:cut].with_columns(pl.from_epoch("ts", time_unit="ns")).write_csv(path)
        await run_retrain(cfg, source=f"file:{path}", symbols=["EDGE"], event_log=event_log)
        verdicts = [e async for e in event_log.replay("autoopt.model.verdict.EDGE")]
        assert isinstance(verdicts[-1], ValidationVerdict)
        counts.append(verdicts[-1].metrics)
    entries = [e async for e in event_log.replay("autoopt.training.ledger.EDGE")]
    assert all(isinstance(e, TrialLedgered) for e in entries)
    # per run: 2 trials + the feature-selection step, each one ledger entry
    assert len(entries) == 6 and len({e.key for e in entries}) == 6
    assert counts[0]["gate/n_trials_raw"] == 3
    assert counts[1]["gate/n_trials_raw"] == 6
    assert 1.0 <= counts[1]["gate/n_trials_effective"] <= 6.0
    trials = [e for e in entries if e.source == "trial"]
    assert all(e.days and len(e.days) == len(e.returns) for e in trials)


def test_the_challenger_is_validated_on_its_best_trials_own_folds(tmp_path: Path) -> None:
    """The pipeline scores the best trial's fold predictions instead of refitting every fold:
    the figures are those of the refits (one thread: the very same trees)."""
    cfg = _config(tmp_path)
    ds = _dataset(cfg, planted_bars(3, "hourly", 0.65, n=900))
    cand = _fit(cfg, ds)
    assert cand.tuned.best_probas is not None
    plugins = open_plugins(cfg)
    trainer, validator = plugins.trainer("lgbm"), plugins.component("validator", "purged_cv")

    def refit(X: np.ndarray, y: np.ndarray):  # noqa: ANN202
        return trainer.fit(X, y, cand.tuned.params, cand.names, seed=cfg.pipeline.seed,
                           threads=1)

    refitted = validator.validate(cand.task, refit, ds.columns(cand.names))
    assert cand.validation.fold_metrics == refitted.fold_metrics
    np.testing.assert_array_equal(cand.validation.returns, refitted.returns)
