"""Market data: sources turn files/exchanges into bars; `validate` decides whether bars are fit to use."""

from autoopt.data.validate import (
    BAR_COLS,
    PRICE_COLS,
    RULES,
    RuleReport,
    ValidationPolicy,
    ValidationReport,
    coerce_bars,
    validate_bars,
)

__all__ = [
    "BAR_COLS",
    "PRICE_COLS",
    "RULES",
    "RuleReport",
    "ValidationPolicy",
    "ValidationReport",
    "coerce_bars",
    "validate_bars",
]
