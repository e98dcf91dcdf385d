"""Where Optuna studies live, so several processes and hosts can share one study.

``pipeline.optuna_storage`` picks the storage (`open_storage`):

* unset: SQLite in the data dir (one machine);
* ``postgresql+psycopg://user:pass@host/db``: PostgreSQL through psycopg 3 (Optuna's RDB
  storage, with heartbeats so a killed worker's trial is failed and its slot freed);
* ``nats`` (or ``nats:<STREAM>``): an Optuna journal on a JetStream stream of the configured
  NATS (`autoopt.studies.journal_nats`), for deployments whose only server is NATS.

`run_budgeted` runs trials of a shared study from any number of workers without exceeding its
trial budget (`autoopt.studies.budget`).
"""

from typing import Any

from autoopt.studies.storage import configure_nats, open_storage


def __getattr__(name: str) -> Any:  # optuna is imported where a study runs, not at import
    if name in ("run_budgeted", "spent_trials"):
        from autoopt.studies import budget

        return getattr(budget, name)
    raise AttributeError(name)


__all__ = ["configure_nats", "open_storage", "run_budgeted", "spent_trials"]
