"""The nightly optimisation pipeline: bars → dataset → feature selection → tuning →
leakage-free validation → gated release, everything recorded as events."""

from autoopt.pipeline.dataset import Dataset, build_dataset, make_folds
from autoopt.pipeline.ingest import bar_batches, ingest_bars, last_stored_ts, stored_bars
from autoopt.pipeline.retrain import Progress, default_storage, run_retrain
from autoopt.pipeline.scoring import PurgedCVValidator
from autoopt.pipeline.selection import FeatureSelection, select_features
from autoopt.pipeline.summary import GlobalBest, ModelResult, RetrainSummary

__all__ = [
    "Dataset",
    "FeatureSelection",
    "GlobalBest",
    "ModelResult",
    "Progress",
    "PurgedCVValidator",
    "RetrainSummary",
    "bar_batches",
    "build_dataset",
    "default_storage",
    "ingest_bars",
    "last_stored_ts",
    "make_folds",
    "run_retrain",
    "select_features",
    "stored_bars",
]
