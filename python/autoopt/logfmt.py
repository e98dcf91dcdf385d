"""Log output: JSON lines for the service, human-readable (rich) for the CLI.

Structured fields (``event_id``, ``correlation_id``, ``symbol``...) are passed with
``logger.info("msg", extra={"event_id": ...})`` and appear as keys in the JSON line.
"""

from __future__ import annotations

import json
import logging
import sys
import time

_STANDARD = set(vars(logging.makeLogRecord({})).keys()) | {"message", "asctime"}


class JsonFormatter(logging.Formatter):
    """One JSON object per line with the standard fields plus any ``extra`` keys."""

    def format(self, record: logging.LogRecord) -> str:
        out = {
            "ts": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
            + f".{int(record.msecs):03d}Z",
            "level": record.levelname,
            "logger": record.name,
            "msg": record.getMessage(),
        }
        for key, value in vars(record).items():
            if key not in _STANDARD and not key.startswith("_"):
                out[key] = value
        if record.exc_info:
            out["exc"] = self.formatException(record.exc_info)
        return json.dumps(out, default=str)


def setup_logging(*, json_lines: bool, level: str = "INFO") -> None:
    """Configure the root logger once; JSON for services, rich for terminals."""
    root = logging.getLogger()
    for handler in list(root.handlers):
        root.removeHandler(handler)
    handler: logging.Handler
    if json_lines:
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(JsonFormatter())
    else:
        from rich.logging import RichHandler

        handler = RichHandler(show_path=False, rich_tracebacks=True)
    root.addHandler(handler)
    root.setLevel(level)
    for noisy in ("nats", "optuna", "asyncio"):
        logging.getLogger(noisy).setLevel(max(logging.WARNING, root.level))
