"""Leakage-free validation: purged walk-forward CV, metrics after costs, DSR and the release gate."""

from autoopt.validation.cv import Fold, PurgedWalkForward
from autoopt.validation.dsr import (
    deannualise,
    deflated_sharpe_ratio,
    expected_max_sharpe,
    probabilistic_sharpe_ratio,
    sharpe_moments,
)
from autoopt.validation.gate import GateConfig, GateReason, GateVerdict, evaluate_gate
from autoopt.validation.metrics import (
    ClassificationMetrics,
    StrategyMetrics,
    StrategyResult,
    classification_metrics,
    positions_from_proba,
    strategy_metrics,
)

__all__ = [
    "ClassificationMetrics",
    "Fold",
    "GateConfig",
    "GateReason",
    "GateVerdict",
    "PurgedWalkForward",
    "StrategyMetrics",
    "StrategyResult",
    "classification_metrics",
    "deannualise",
    "deflated_sharpe_ratio",
    "evaluate_gate",
    "expected_max_sharpe",
    "positions_from_proba",
    "probabilistic_sharpe_ratio",
    "sharpe_moments",
    "strategy_metrics",
]
