"""Self-contained HTML reports (one file, works offline): a small page builder with generic
figures and tables (`autoopt.reports.html`) and the reports built on it (`backtest`).

Nothing is imported here: plotly is heavy and only a report needs it (`import autoopt` stays
light); import the submodule you use."""
