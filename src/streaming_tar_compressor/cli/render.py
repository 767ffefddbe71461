"""Live progress on stderr; the only module that imports rich."""

from __future__ import annotations

import os
from types import TracebackType

from rich.console import Console
from rich.progress import (
    BarColumn,
    DownloadColumn,
    Progress,
    Task,
    TaskID,
    TextColumn,
    TimeRemainingColumn,
    TransferSpeedColumn,
)


class ProgressBar:
    """Bytes done of total, rate, ETA and the current file, redrawn on a terminal."""

    def __init__(self, verb: str, console: Console | None = None) -> None:
        self._verb = verb
        self._bar = Progress(
            TextColumn("[bold]{task.fields[verb]}"),
            BarColumn(),
            DownloadColumn(binary_units=True),
            TransferSpeedColumn(),
            TimeRemainingColumn(),
            TextColumn("{task.fields[current]}", style="dim"),
            console=console or Console(stderr=True),
            transient=False,
        )
        self._task: TaskID | None = None

    def __enter__(self) -> ProgressBar:
        self._bar.start()
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        trace: TracebackType | None,
    ) -> None:
        # The total is an upper bound (the walk's sizes, before tar padding is known): a run
        # that succeeded fills the bar; one that failed or was interrupted stays where it was.
        if kind is None and self._task is not None:
            self._bar.update(self._task, total=self.completed)
        self._bar.stop()

    @property
    def completed(self) -> float:
        """Bytes the bar shows as done."""
        return self._state.completed if self._state is not None else 0

    @property
    def total(self) -> float | None:
        """Bytes the bar shows as the whole (None before ``start``)."""
        return self._state.total if self._state is not None else None

    @property
    def _state(self) -> Task | None:
        return next((task for task in self._bar.tasks if task.id == self._task), None)

    def start(self, total_bytes: int | None) -> None:
        self._task = self._bar.add_task("", total=total_bytes, verb=self._verb, current="")

    def advance(self, done_bytes: int) -> None:
        if self._task is not None:
            self._bar.update(self._task, advance=done_bytes)

    def file(self, path: str, size: int) -> None:
        if self._task is not None:
            self._bar.update(self._task, current=_shorten(path))

    def finish(self) -> None:
        """The pipeline stopped, done or not: only ``__exit__`` knows which, and fills the bar."""


def _shorten(path: str, width: int = 40) -> str:
    return path if len(path) <= width else "…" + path[-(width - 1) :].split(os.sep, 1)[-1]
