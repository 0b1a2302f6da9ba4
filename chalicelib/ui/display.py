"""How a run's progress is drawn (what is drawn: chalicelib/ui/progress.py).

On a terminal, `LiveDisplay`: one region redrawn in place, as wide as the terminal is now
(rich), with a bar for the run and one per task type, elapsed time and an estimate of what is
left; each failure is printed above it as it happens. Anywhere else (a pipe, a file, CI),
`PlainDisplay`: timestamped lines, flushed as they are written: the run id first, then the
failures as they happen and a progress line at most every UPDRAFT_PROGRESS_EVERY seconds
(default 10), then the end.

A display never stops a run: when its stream can no longer be written (the terminal was
closed), it goes quiet.
"""

from __future__ import annotations

import contextlib
import os
import time
from collections.abc import Callable
from typing import Any, TextIO

from chalicelib.ui.progress import (
    FAILED,
    UPSTREAM_FAILED,
    Display,
    Failed,
    Frame,
    TypeRow,
    clock_text,
    state_words,
)

PLAIN_EVERY_S = 10.0
MAX_TYPE_ROWS = 8  # task types drawn in the live region; the rest are summed up in one line
MAX_SKIPPED_NAMED = 3  # UPSTREAM_FAILED tasks named per failed parent; the rest are counted
MAX_FAILED_SHOWN = 20  # failed tasks shown in full at one look; the rest are counted


def open_display(stream: TextIO) -> Display:
    """The live display on a terminal that can draw it, plain lines elsewhere (and where rich,
    a dependency, is missing from a broken install: the run goes on, drawn plainly)."""
    if _is_terminal(stream) and os.environ.get("TERM", "") != "dumb":
        try:
            return LiveDisplay(stream)
        except ImportError:
            pass
    return PlainDisplay(stream, plain_every(stream))


def plain_every(stream: TextIO | None = None) -> float:
    """UPDRAFT_PROGRESS_EVERY (seconds between two progress lines); a value that is not a
    number of seconds is named on `stream` and the default used (a run is not refused for it)."""
    text = os.environ.get("UPDRAFT_PROGRESS_EVERY", "").strip()
    if not text:
        return PLAIN_EVERY_S
    try:
        value = float(text)
    except ValueError:
        value = -1.0
    if value >= 0 and value != float("inf"):
        return value
    if stream is not None:
        with contextlib.suppress(OSError, ValueError):
            stream.write(f"updraft: UPDRAFT_PROGRESS_EVERY={text!r} is not a number of seconds (0 or more); "
                         f"using {PLAIN_EVERY_S:g}\n")
    return PLAIN_EVERY_S


def _is_terminal(stream: TextIO) -> bool:
    try:
        return stream.isatty()
    except (AttributeError, ValueError, OSError):
        return False


def skipped_groups(tasks: list[Failed]) -> dict[str, list[str]]:
    """UPSTREAM_FAILED task ids by the failed task they depend on."""
    groups: dict[str, list[str]] = {}
    for f in tasks:
        if f.state == UPSTREAM_FAILED:
            groups.setdefault(f.parent or "an upstream task", []).append(f.task_id)
    return groups


def skipped_text(parent: str, ids: list[str]) -> str:
    named = ", ".join(ids[:MAX_SKIPPED_NAMED])
    more = f" and {len(ids) - MAX_SKIPPED_NAMED} more" if len(ids) > MAX_SKIPPED_NAMED else ""
    return f"UPSTREAM_FAILED {named}{more}: not run, because {parent} failed"


def shown_failures(tasks: list[Failed]) -> tuple[list[Failed], int]:
    """The FAILED tasks to show in full, and how many more failed at the same look."""
    failed = [f for f in tasks if f.state == FAILED]
    return failed[:MAX_FAILED_SHOWN], max(0, len(failed) - MAX_FAILED_SHOWN)


def more_failed_text(n: int, run_id: str) -> str:
    return f"... and {n} more FAILED tasks: updraft status {run_id} --state FAILED"


def failure_head(f: Failed) -> str:
    tries = f" (attempt {f.attempt})" if f.attempt > 1 else ""
    detail = f": {f.detail}" if f.detail and f.detail != f.reason else ""
    return f"FAILED {f.task_id}{tries}: {f.reason}{detail}"


def counts_text(frame: Frame) -> str:
    return " ".join(f"{label}={n}" for label, n in state_words(frame.counts))


class PlainDisplay:
    """Timestamped lines, for logs."""

    wants_types = False

    def __init__(self, stream: TextIO, every_s: float = PLAIN_EVERY_S,
                 clock: Callable[[], float] = time.monotonic, now: Callable[[], float] = time.time) -> None:
        self.stream = stream
        self.every_s = every_s
        self.clock = clock
        self.now = now
        self.next_at = 0.0
        self.last = ""
        self.state = ""
        self.broken = False
        self.run_id = ""

    def _write(self, *lines: str) -> None:
        if self.broken:
            return
        stamp = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(self.now()))
        try:
            self.stream.write("".join(f"{stamp} {line}\n" for line in lines))
            self.stream.flush()
        except (OSError, ValueError):
            self.broken = True

    def start(self, run_id: str, total: int, where: str) -> None:
        self.run_id = run_id
        self._write(f"run {run_id}: {total} tasks ({where})")

    def frame(self, frame: Frame) -> None:
        if frame.state != self.state:
            self.state = frame.state
            self._write(f"run {frame.run_id} {frame.state}")
        text = f"{frame.done}/{frame.total} done ({frame.percent}%) {counts_text(frame)}"
        now = self.clock()
        if text == self.last or now < self.next_at:
            return
        self.last, self.next_at = text, now + self.every_s
        left = f", ~{clock_text(frame.eta_s)} left" if frame.eta_s is not None else ""
        self._write(f"progress {text}; {clock_text(frame.elapsed_s)} elapsed{left}")

    def failed(self, tasks: list[Failed], logs_command: Callable[[str], str]) -> None:
        shown, more = shown_failures(tasks)
        for f in shown:
            self._write(failure_head(f), *(f"  | {line}" for line in f.lines), f"  logs: {logs_command(f.task_id)}")
        if more:
            self._write(more_failed_text(more, self.run_id))
        for parent, ids in skipped_groups(tasks).items():
            self._write(skipped_text(parent, ids))

    def close(self, frame: Frame) -> None:
        self._write(f"run {frame.run_id} {frame.state}: {frame.done}/{frame.total} done ({frame.percent}%) "
                    f"{counts_text(frame)} in {clock_text(frame.elapsed_s)}")


class LiveDisplay:
    """One live region on a terminal (rich), redrawn in place at each frame; nothing is drawn
    between frames (no thread: the run's loop draws, so signals stay the loop's)."""

    wants_types = True

    def __init__(self, stream: TextIO) -> None:
        from rich.console import Console
        from rich.live import Live

        self.stream = stream
        self.console = Console(file=stream, highlight=False, emoji=False, markup=False)  # paths may hold [ ]
        self.live = Live(console=self.console, auto_refresh=False, redirect_stdout=False, redirect_stderr=True,
                         vertical_overflow="crop")
        self.started = False
        self.broken = False
        self.run_id = ""
        self.drawn: tuple[Any, ...] | None = None  # what the last frame showed

    def _fit(self) -> None:
        """As wide as the terminal is now (it may have been resized since the last frame)."""
        try:
            size = os.get_terminal_size(self.stream.fileno())
        except (AttributeError, ValueError, OSError):
            return
        if size.columns > 0 and size.lines > 0:
            self.console.size = (size.columns, size.lines)

    def _guard(self, action: Callable[[], Any]) -> None:
        if self.broken:
            return
        try:
            self._fit()
            action()
        except (OSError, ValueError):  # the terminal is gone: the run goes on without a display
            self.broken = True

    def start(self, run_id: str, total: int, where: str) -> None:
        self.run_id = run_id

        def begin() -> None:
            self.console.print(f"run {run_id}: {total} tasks ({where})", soft_wrap=False)
            self.live.start()
            self.started = True
        self._guard(begin)

    def frame(self, frame: Frame) -> None:
        """Redraw when something shown changed (the runtime calls ten times a second)."""
        key = (frame.state, tuple(sorted(frame.counts.items())), frame.types, int(frame.elapsed_s),
               None if frame.eta_s is None else int(frame.eta_s), self.console.size)
        if key != self.drawn:
            self.drawn = key
            self._guard(lambda: self.live.update(self._render(frame), refresh=True))

    def failed(self, tasks: list[Failed], logs_command: Callable[[str], str]) -> None:
        from rich.text import Text

        def show() -> None:
            shown, more = shown_failures(tasks)
            for f in shown:
                self.console.print(Text(failure_head(f), style="bold red"))
                for line in f.lines:
                    self.console.print(Text(f"  | {line}", no_wrap=True, overflow="ellipsis", style="dim"))
                self.console.print(Text(f"  logs: {logs_command(f.task_id)}"))
            if more:
                self.console.print(Text(more_failed_text(more, self.run_id), style="red"))
            for parent, ids in skipped_groups(tasks).items():
                self.console.print(Text(skipped_text(parent, ids), style="yellow"))
        self._guard(show)

    def close(self, frame: Frame) -> None:
        def end() -> None:
            if self.started:
                self.live.update(self._render(frame), refresh=True)
                self.live.stop()
        try:
            self._guard(end)
        finally:
            if self.started and self.broken:
                self._abandon()

    def _abandon(self) -> None:
        """Stop the live region whose terminal is gone: its last drawing fails, and it still
        gives sys.stderr back."""
        with contextlib.suppress(Exception):
            self.live.stop()
        self.started = False

    def _render(self, frame: Frame) -> Any:
        from rich.console import Group
        from rich.progress_bar import ProgressBar
        from rich.table import Table
        from rich.text import Text

        width = self.console.size.width
        finished = frame.state != "RUNNING"
        state_style = {"SUCCEEDED": "bold green", "FAILED": "bold red", "CANCELLED": "bold yellow"}.get(
            frame.state, "bold")
        head = Text(no_wrap=True, overflow="ellipsis")
        head.append(f"run {frame.run_id} ")
        head.append(frame.state, style=state_style)
        head.append(f"  {clock_text(frame.elapsed_s)}")
        if frame.eta_s is not None and not finished:
            head.append(f"  ~{clock_text(frame.eta_s)} left")
        counts = Text(counts_text(frame).replace("=", " "), no_wrap=True, overflow="ellipsis", style="dim")

        label_w = max(8, min(24, width // 4))
        table = Table.grid(padding=(0, 1), expand=True)
        table.add_column(width=label_w, no_wrap=True, overflow="ellipsis")
        table.add_column(ratio=1, min_width=4)
        table.add_column(no_wrap=True, justify="right")
        bad = frame.counts.get(FAILED, 0) + frame.counts.get(UPSTREAM_FAILED, 0)
        colour = "red" if bad else "yellow" if frame.state == "CANCELLED" else "green"
        table.add_row(Text("all tasks", style="bold"),
                      ProgressBar(total=max(frame.total, 1), completed=frame.done if frame.total else 1,
                                  complete_style=colour, finished_style=colour),
                      f"{frame.done}/{frame.total} {frame.percent:>3}%")
        rows = _type_rows(frame.types)
        if len(frame.types) > 1:
            for row in rows:
                table.add_row(Text(f"  {row.name}"), ProgressBar(total=max(row.total, 1), completed=row.done),
                              f"{row.done}/{row.total}")
        hidden = len(frame.types) - len(rows) if len(frame.types) > 1 else 0
        parts: list[Any] = [head, table]
        if hidden > 0:
            parts.append(Text(f"  ... {hidden} more task types", style="dim", no_wrap=True, overflow="ellipsis"))
        parts.append(counts)
        return Group(*parts)


def _type_rows(types: tuple[TypeRow, ...]) -> list[TypeRow]:
    """The rows worth a line: every type when few, else those with most tasks left (in the
    order they came)."""
    if len(types) <= MAX_TYPE_ROWS:
        return list(types)
    keep = sorted(types, key=lambda r: (r.done >= r.total, -(r.total - r.done)))[:MAX_TYPE_ROWS - 1]
    chosen = {r.name for r in keep}
    return [r for r in types if r.name in chosen]
