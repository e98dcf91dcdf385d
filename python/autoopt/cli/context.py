"""State shared by CLI verbs: the global options, the loaded config, console helpers."""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine
from dataclasses import dataclass, field
from typing import Any, NoReturn, TypeVar

import typer
from rich.console import Console
from rich.markup import escape

from autoopt.config import Config, load_config
from autoopt.errors import AutooptError
from autoopt.redact import redact

console = Console()
err_console = Console(stderr=True)
T = TypeVar("T")


def one_line(message: str) -> str:
    """``message`` as one redacted line: errors reach terminals and CI logs, secrets must not,
    and a multi-line message (a server's log tail) would read as several errors."""
    return "; ".join(part.strip() for part in redact(message).splitlines() if part.strip())


def print_error(message: str) -> None:
    """``error: <message>`` on stderr, one line, never wrapped, no markup interpreted."""
    err_console.print(
        f"[bold red]error:[/bold red] {escape(one_line(message))}", soft_wrap=True, highlight=False
    )


def fail(message: str, code: int = 2) -> NoReturn:
    """Print an error (one redacted line) and exit with ``code``."""
    print_error(message)
    raise typer.Exit(code)


@dataclass
class CliContext:
    config_path: str | None = None
    data_dir: str | None = None
    verbose: bool = False
    _config: Config | None = field(default=None, repr=False)

    def config(self) -> Config:
        """Load and validate the config once; a bad key exits with a message naming it."""
        if self._config is None:
            overrides = {"data_dir": self.data_dir} if self.data_dir else None
            try:
                self._config = load_config(self.config_path, overrides=overrides)
            except AutooptError as exc:
                fail(str(exc))
            from autoopt.logfmt import setup_logging

            level = "DEBUG" if self.verbose else self._config.log.level
            setup_logging(json_lines=bool(self._config.log.json), level=level)
        return self._config


def run(coro: Coroutine[Any, Any, T]) -> T:
    """Run a coroutine for a CLI verb, turning autoopt errors into a clean exit."""
    try:
        return asyncio.run(coro)
    except AutooptError as exc:
        fail(str(exc))
