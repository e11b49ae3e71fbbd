"""What the `eventbatch` commands print: tables, progress, JSON and errors, on rich.

On a terminal: tables fit its width (long cells wrap instead of pushing the table off screen; `wide=True` keeps
every cell whole on one line), progress bars with counts and rates, colour. Colour only on a TTY, and never with
`NO_COLOR` set (https://no-color.org) or `--no-color` (`configure(no_color=True)`).
Anywhere else (a pipe, a file, a test): plain text that stays the same from one release to the next, because
scripts read it: tables as space-aligned columns (long cells cut with an ellipsis unless `wide`), progress as one
line per change of the counts, JSON without colour.
Untrusted text (blob names) is passed through `runs_view.printable` by the callers before it gets here; rich
markup in cells is never interpreted (cells are `Text`, not markup).
"""

from __future__ import annotations

import json
import os
import sys
import time
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import TextIO

from rich.console import Console
from rich.progress import (
    BarColumn,
    DownloadColumn,
    MofNCompleteColumn,
    Progress,
    ProgressColumn,
    TextColumn,
    TimeElapsedColumn,
)
from rich.table import Table
from rich.text import Text

STATE_STYLES = {"received": "dim", "submitted": "blue", "running": "cyan", "succeeded": "green", "failed": "red",
                "rejected": "magenta", "cancelled": "yellow"}
_options = {"no_color": False}


def configure(no_color: bool = False) -> None:
    """`--no-color`: no colour for the rest of the process, even on a TTY."""
    _options["no_color"] = _options["no_color"] or no_color


def color_enabled(stream: TextIO | None = None) -> bool:
    stream = stream or sys.stdout
    return (not _options["no_color"] and not os.environ.get("NO_COLOR") and stream.isatty())


def is_tty(stream: TextIO | None = None) -> bool:
    return (stream or sys.stdout).isatty()


def console(stream: TextIO | None = None) -> Console:
    stream = stream or sys.stdout
    return Console(file=stream, no_color=not color_enabled(stream), highlight=False, emoji=False, markup=False,
                   force_terminal=stream.isatty() or None)


# ---- tables ------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Column:
    header: str
    limit: int | None = None  # plain output: cut cells to this many characters unless wide
    style_by_value: Mapping[str, str] = field(default_factory=dict)  # e.g. STATE_STYLES for a STATE column
    shrink: bool = True  # on a terminal, may wrap to fit (ids and states: False, kept on one line)


def _cut(text: str, limit: int | None) -> str:
    return text if not limit or len(text) <= limit else text[: limit - 1] + "\u2026"


def plain_table(columns: Sequence[Column], rows: Sequence[Sequence[str]], wide: bool = False) -> str:
    """Space-aligned columns (two spaces apart), header first, trailing spaces stripped."""
    body = [[c if wide else _cut(c, col.limit) for c, col in zip(row, columns, strict=True)] for row in rows]
    header = [c.header for c in columns]
    widths = [max(len(header[i]), *(len(b[i]) for b in body)) if body else len(header[i])
              for i in range(len(columns))]
    return "\n".join("  ".join(cell.ljust(w) for cell, w in zip(line, widths, strict=True)).rstrip()
                     for line in [header, *body])


def rich_table(columns: Sequence[Column], rows: Sequence[Sequence[str]], wide: bool = False) -> Table:
    t = Table(box=None, pad_edge=False, show_edge=False, header_style="bold", expand=False)
    for col in columns:
        keep = wide or not col.shrink
        t.add_column(col.header, no_wrap=keep, overflow="ignore" if wide else "fold" if col.shrink else "ellipsis",
                     ratio=None if keep else 1)
    for row in rows:
        t.add_row(*(Text(cell, style=col.style_by_value.get(cell, "")) for cell, col in zip(row, columns,
                                                                                          strict=True)))
    return t


def table(columns: Sequence[Column], rows: Sequence[Sequence[str]], wide: bool = False,
          stream: TextIO | None = None) -> None:
    """Print a table: fitted to the terminal (or whole with `wide`), or plain columns off a terminal."""
    stream = stream or sys.stdout
    if not is_tty(stream):
        print(plain_table(columns, rows, wide), file=stream)
        return
    out = console(stream)
    if wide:
        out.width = max(out.width, 10_000)  # never fold: the terminal scrolls or wraps whole lines
        out.soft_wrap = True
    out.print(rich_table(columns, rows, wide))


# ---- JSON and errors ---------------------------------------------------------------------------------------
def dumps(obj) -> str:
    return json.dumps(obj, indent=2, ensure_ascii=False, default=str)


def print_json(obj, stream: TextIO | None = None) -> None:
    """JSON for scripts: plain on a pipe, coloured on a TTY (same text)."""
    stream = stream or sys.stdout
    text = dumps(obj)
    if color_enabled(stream):
        console(stream).print_json(text, indent=2, ensure_ascii=False)
    else:
        print(text, file=stream)


def error(command: str, message: str) -> None:
    """`eventbatch <command>: <message>` on stderr (red on a TTY)."""
    line = f"eventbatch {command}: {message}" if command else f"eventbatch: {message}"
    if color_enabled(sys.stderr):
        console(sys.stderr).print(Text(line, style="red"))
    else:
        print(line, file=sys.stderr)


def state_text(state: str) -> Text:
    return Text(state, style=STATE_STYLES.get(state, ""))


# ---- progress ----------------------------------------------------------------------------------------------
class _RateColumn(ProgressColumn):
    """Items per second (or bytes per second with `bytes=True`) since the start."""

    def __init__(self, unit: str):
        super().__init__()
        self.unit = unit

    def render(self, task) -> Text:
        speed = task.finished_speed or task.speed
        if speed is None:
            return Text("", style="dim")
        if self.unit == "bytes":
            return Text(_human_bytes(speed) + "/s", style="dim")
        return Text(f"{speed:.1f} {self.unit}/s", style="dim")


def _human_bytes(n: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB"):
        if n < 1024 or unit == "GiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} GiB"


class Bar:
    """One progress bar: `update(done, total, detail)`; on a pipe a line each time `detail` or `done` changes."""

    def __init__(self, description: str, total: int | None, unit: str, stream: TextIO,
                 progress: Progress | None):
        self.description, self.total, self.unit, self.stream = description, total, unit, stream
        self._progress = progress
        self._task = progress.add_task(description, total=total, detail="") if progress else None
        self._last: tuple | None = None
        self._t0 = time.monotonic()
        self.done = 0

    def update(self, done: int, total: int | None = None, detail: str = "") -> None:
        self.done = done
        self.total = total if total is not None else self.total
        if self._progress is not None:
            self._progress.update(self._task, completed=done, total=self.total, detail=detail)
            return
        key = (done, self.total, detail)
        if key != self._last:
            self._last = key
            elapsed = time.monotonic() - self._t0
            counted = f"{_human_bytes(done)}" if self.unit == "bytes" else f"{done}"
            total = "?" if self.total is None else _human_bytes(self.total) if self.unit == "bytes" else self.total
            counted += f"/{total}"
            print(f"[{elapsed:5.1f}s] {self.description} {counted}" + (f"  {detail}" if detail else ""),
                  file=self.stream, flush=True)

    def advance(self, n: int = 1, detail: str = "") -> None:
        self.update(self.done + n, detail=detail)


@contextmanager
def progress(description: str, total: int | None = None, unit: str = "runs",
             stream: TextIO | None = None) -> Iterator[Bar]:
    """A progress bar with done/total, the rate (`unit` per second; `unit="bytes"` for transfers), the elapsed
    time and a free `detail` text (e.g. the counts per state). Off a terminal: plain lines, one per change."""
    stream = stream or sys.stdout
    if not is_tty(stream):
        yield Bar(description, total, unit, stream, None)
        return
    count = DownloadColumn() if unit == "bytes" else MofNCompleteColumn()
    with Progress(TextColumn("{task.description}"), BarColumn(), count, _RateColumn(unit), TimeElapsedColumn(),
                  TextColumn("{task.fields[detail]}"), console=console(stream), transient=False) as p:
        yield Bar(description, total, unit, stream, p)
