"""State shared by CLI verbs: the global options, the loaded config, console helpers."""

from __future__ import annotations

import asyncio
import difflib
import os
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


DEBUG_ENV = "AUTOOPT_DEBUG"
_debug = False


def set_debug(on: bool) -> None:
    """``--debug``: show tracebacks (the global option sets it; ``$AUTOOPT_DEBUG=1`` too)."""
    global _debug
    _debug = on


def debug_enabled() -> bool:
    return _debug or os.environ.get(DEBUG_ENV, "").lower() in {"1", "true", "yes", "on"}


def expected_error(exc: BaseException) -> NoReturn:
    """An error the operator can fix: one line and exit code 2, or the traceback in debug mode."""
    if debug_enabled():
        raise exc
    fail(str(exc))


def fail(message: str, code: int = 2) -> NoReturn:
    """Print an error (one redacted line) and exit with ``code``."""
    print_error(message)
    raise typer.Exit(code)


def cli_symbol(value: str, what: str = "symbol", *, allow_all: bool = False) -> str:
    """A symbol argument under the one grammar (`autoopt.symbols`), or exit with one line
    naming ``what``; ``allow_all``: ``"*"`` (every symbol) is accepted too."""
    from autoopt.symbols import ALL_SYMBOLS, validate_symbol

    if allow_all and value == ALL_SYMBOLS:
        return value
    try:
        return validate_symbol(value, what)
    except AutooptError as exc:
        fail(str(exc))


def cli_symbols(text: str, what: str = "--symbols") -> list[str]:
    """A comma-separated symbol list argument, each under the grammar, or exit with one line."""
    from autoopt.symbols import parse_symbols

    try:
        return parse_symbols(text, what)
    except AutooptError as exc:
        fail(str(exc))


def check_models(plugins: Any, names: list[str], key: str) -> None:
    """Exit with one line when a requested model has no registered trainer, listing those that
    are (and the closest name), before any work starts instead of when a job reaches it."""
    known = sorted(plugins.components("trainer"))
    for name in names:
        if name not in known:
            close = difflib.get_close_matches(name, known, n=1)
            hint = f"; did you mean {close[0]!r}?" if close else ""
            fail(
                f"{key}: unknown model {name!r}; registered trainers: "
                f"{', '.join(known) or 'none'}{hint}"
            )
        try:  # a trainer whose libraries are not installed (torch for tft): imports nothing
            plugins.check_available("trainer", name)
        except AutooptError as exc:
            fail(f"{key}: model {name!r}: {exc}")


def check_drift_detectors(config: Config) -> None:
    """ConfigError (one line) when ``policy.drift`` names a detector no plugin registers, at
    config load like any bad key. The plugins are loaded only when a name is not built in."""
    from autoopt.core.detectors import check_names

    try:
        check_names(config.policy, ("adwin", "page_hinkley"))
        return
    except AutooptError:
        pass
    from autoopt.plugins import load_plugins

    plugins = load_plugins(disabled=config.plugins.disabled)
    check_names(config.policy, plugins.components("drift_detector"))


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
                check_drift_detectors(self._config)
            except AutooptError as exc:
                expected_error(exc)
            from autoopt.logfmt import setup_logging

            level = "DEBUG" if self.verbose else self._config.log.level
            setup_logging(json_lines=bool(self._config.log.json), level=level)
        return self._config


def run(coro: Coroutine[Any, Any, T]) -> T:
    """Run a coroutine for a CLI verb, turning autoopt errors into a one-line exit."""
    try:
        return asyncio.run(coro)
    except AutooptError as exc:
        expected_error(exc)
