"""The paper trader: fills routed signals against the bars with configured costs and publishes
a `TradeOutcome` per variant, so a shadow canary (or any experiment arm that places no real
orders) has outcomes to be judged on. `autoopt.paper.book` is the pure fill model;
`autoopt.paper.trader` reads routes and bars from the log and appends the outcomes."""

from autoopt.paper.book import PaperBook, PaperTrade

__all__ = ["PaperBook", "PaperTrade"]
