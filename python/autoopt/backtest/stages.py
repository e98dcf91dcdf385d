"""Content-addressed stage results for the policy backtest: each key computed at most once,
kept in memory and on disk, at most ``jobs`` computations at a time.

Why one store for every kind of stage: the model retrains (`autoopt.backtest.training`) and the
risk re-tunes (`autoopt.backtest.risk_retune`) are both pure functions of their content key, are
both shared between policies, and both run in worker processes with ``--jobs``. Sharing one
store means one process pool and one limit on concurrent stages, so ``--jobs 2`` never runs
four stages on two cores, and one code path for "in flight, on disk or compute".

A stage runs as ``run(payload) -> bytes`` (a module-level function, so worker processes import
it by name; requests and results are msgpack, models their native files, never pickled). A
result is written atomically (temporary file, then rename); a torn file is recomputed.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Callable
from concurrent.futures import Executor, ProcessPoolExecutor
from pathlib import Path
from typing import Any

import msgspec


class StageStore:
    """Stage results by content key (module doc)."""

    def __init__(self, directory: str | os.PathLike[str], *, jobs: int = 1) -> None:
        self.directory = Path(directory)
        self.directory.mkdir(parents=True, exist_ok=True)
        self.jobs = max(1, int(jobs))
        self._executor: Executor | None = None
        self._tasks: dict[str, asyncio.Future[Any]] = {}
        self._slots: asyncio.Semaphore | None = None
        self.hits = 0
        self.misses = 0

    async def get(self, key: str, kind: type[Any], payload: Callable[[], bytes],
                  run: Callable[[bytes], bytes], *, subdir: str = "") -> Any:
        """The result of ``key`` decoded as ``kind``: in flight or done in this run, on disk from
        an earlier one, or computed by ``run(payload())`` (``payload`` is only built then)."""
        task = self._tasks.get(key)
        if task is not None:
            self.hits += 1
            return await asyncio.shield(task)
        folder = self.directory / subdir if subdir else self.directory
        path = folder / f"{key}.msgpack"
        if path.is_file():
            try:
                value = msgspec.msgpack.decode(path.read_bytes(), type=kind)
            except msgspec.DecodeError:
                value = None  # a torn cache file: recompute
            if value is not None:
                self.hits += 1
                done: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
                done.set_result(value)
                self._tasks[key] = done
                return value
        self.misses += 1
        folder.mkdir(parents=True, exist_ok=True)
        task = asyncio.ensure_future(self._compute(path, kind, payload(), run))
        self._tasks[key] = task
        return await asyncio.shield(task)

    async def _compute(self, path: Path, kind: type[Any], payload: bytes,
                       run: Callable[[bytes], bytes]) -> Any:
        if self._slots is None:
            self._slots = asyncio.Semaphore(self.jobs)
        async with self._slots:  # at most `jobs` stages at once, whatever asks for them
            if self.jobs > 1:
                if self._executor is None:
                    import multiprocessing

                    self._executor = ProcessPoolExecutor(
                        self.jobs, mp_context=multiprocessing.get_context("spawn"))
                raw = await asyncio.get_running_loop().run_in_executor(
                    self._executor, run, payload)
            else:
                raw = await asyncio.to_thread(run, payload)
        tmp = path.with_suffix(f".tmp{os.getpid()}")
        tmp.write_bytes(raw)
        os.replace(tmp, path)
        return msgspec.msgpack.decode(raw, type=kind)

    def close(self) -> None:
        """Stop the worker processes (results stay on disk)."""
        if self._executor is not None:
            self._executor.shutdown(wait=True, cancel_futures=True)
            self._executor = None


__all__ = ["StageStore"]
