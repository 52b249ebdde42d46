"""Show a sweep's progress: a live table on a terminal, plain lines elsewhere (logs, CI)."""

from __future__ import annotations

import time
from typing import Any

from rich.console import Console
from rich.live import Live
from rich.markup import escape
from rich.table import Table

from ablate import rundir
from ablate.sweep.runner import Entry

STYLE = {"running": "cyan", "complete": "green", "diverged": "magenta", "failed": "red", "interrupted": "yellow"}


def columns(rows: list[list[str]], indent: str = "  ") -> list[str]:
    """Rows of cells as left-aligned text columns."""
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    return [indent + "  ".join(cell.ljust(w) for cell, w in zip(row, widths)).rstrip() for row in rows]


class SweepView:
    """Reads each running run's metrics.csv on every ``tick`` and shows its epoch and latest val acc."""

    def __init__(self, console: Console, entries: list[Entry], live: bool) -> None:
        self.console, self.entries = console, entries
        self.live = Live(console=console, refresh_per_second=2, auto_refresh=False) if live else None
        self.progress: dict[int, tuple[int, float | None]] = {}
        self.shown: dict[int, tuple[str, int]] = {}
        self.last_read = 0.0

    def __enter__(self) -> SweepView:
        self._read(force=True)
        if self.live is not None:
            self.live.update(self.table())
            self.live.start(refresh=True)
        return self

    def __exit__(self, *exc: Any) -> None:
        if self.live is not None:
            self._read(force=True)
            self.live.update(self.table(), refresh=True)
            self.live.stop()

    def tick(self) -> None:
        self._read()
        if self.live is not None:
            self.live.update(self.table(), refresh=True)
        else:
            self._print_changes()

    def _read(self, force: bool = False) -> None:
        if not force and time.monotonic() - self.last_read < 1.0:
            return
        self.last_read = time.monotonic()
        for i, entry in enumerate(self.entries):
            if force or entry.state == "running" or i not in self.progress:
                rows = rundir.read_metrics(entry.run.path)
                self.progress[i] = (len(rows), rows[-1]["val_acc"] if rows else None)

    def table(self) -> Table:
        table = Table(box=None, header_style="bold", pad_edge=False)
        for column in ("#", "run", "seed", "state", "epoch", "val acc", "time"):
            table.add_column(column, justify="right" if column in ("#", "seed", "val acc", "time") else "left")
        for i, entry in enumerate(self.entries):
            cells = [escape(cell) for cell in self._cells(i, entry)]
            cells[3] = f"[{STYLE.get(entry.state, 'dim')}]{cells[3]}[/]"
            table.add_row(*cells)
        return table

    def _cells(self, i: int, entry: Entry) -> list[str]:
        epoch, acc = self.progress.get(i, (0, None))
        seconds = entry.seconds if entry.seconds is not None else (
            time.time() - entry.started if entry.started and entry.state == "running" else None)
        return [str(i + 1), entry.run.name, str(entry.run.seed), entry.state,
                f"{epoch}/{entry.run.config['train']['epochs']}", "-" if acc is None else f"{100 * acc:.2f}%",
                "-" if seconds is None else f"{seconds:.0f}s"]

    def _print_changes(self) -> None:
        for i, entry in enumerate(self.entries):
            epoch = self.progress.get(i, (0, None))[0]
            if self.shown.get(i) == (entry.state, epoch):
                continue
            old_state, old_epoch = self.shown.get(i, ("", 0))
            self.shown[i] = (entry.state, epoch)
            cells = self._cells(i, entry)
            head = f"[{i + 1}/{len(self.entries)}] {entry.run.name} (seed {entry.run.seed})"
            if entry.state != old_state and entry.state != "pending":
                state = f"already {entry.state}" if entry.action == "skip" else entry.state
                error = f": {entry.error}" if entry.error else ""
                self.console.print(f"{head} {state}{error}", highlight=False, markup=False)
            if entry.state == "running" and epoch != old_epoch:
                self.console.print(f"{head} epoch {cells[4]} val acc {cells[5]}", highlight=False, markup=False)
