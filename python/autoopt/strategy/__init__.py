"""Strategy parameters in the optimisation loop: what they mean (`params`), how they trade
(`simulate`), how they are tuned (`tuning`), gated (`gate`) and released (`release`).

Submodules are imported where used: ``import autoopt.strategy`` loads no optuna.
"""

from autoopt.strategy.params import NEUTRAL, StrategyParams

__all__ = ["NEUTRAL", "StrategyParams"]
