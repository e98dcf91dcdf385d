"""Market data: sources turn files/exchanges into bars; `validate` decides whether bars are fit to use."""

from autoopt.data.validate import (
    BAR_COLS,
    PRICE_COLS,
    DataIssue,
    ValidationPolicy,
    ValidationReport,
    validate_bars,
)

__all__ = [
    "BAR_COLS",
    "DataIssue",
    "PRICE_COLS",
    "ValidationPolicy",
    "ValidationReport",
    "validate_bars",
]
