"""The progress display's parts without a run: the tracker, the plain lines, the live frame."""

from __future__ import annotations

import errno
import io
import re
from collections.abc import Callable, Collection, Iterable, Mapping

import pytest

from chalicelib.ui.display import LiveDisplay, PlainDisplay, skipped_text
from chalicelib.ui.progress import Estimator, Failed, Frame, Tracker, TypeRow, split_log

ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")


class FakeSource:
    def __init__(self, types: Mapping[str, str]) -> None:
        self.types = dict(types)
        self.ended_ids: list[str] = []
        self.failures: list[Failed] = []
        self.failed_calls = 0

    def task_types(self) -> Mapping[str, str]:
        return self.types

    def ended(self) -> Iterable[str]:
        return list(self.ended_ids)

    def failed(self, known: Collection[str]) -> list[Failed]:
        self.failed_calls += 1
        return [f for f in self.failures if f.task_id not in known]


class Recorder:
    wants_types = True

    def __init__(self) -> None:
        self.frames: list[Frame] = []
        self.failed_batches: list[list[Failed]] = []
        self.closed: Frame | None = None

    def start(self, run_id: str, total: int, where: str) -> None:
        pass

    def frame(self, frame: Frame) -> None:
        self.frames.append(frame)

    def failed(self, tasks: list[Failed], logs_command: Callable[[str], str]) -> None:
        self.failed_batches.append(tasks)

    def close(self, frame: Frame) -> None:
        self.closed = frame


def test_the_tracker_shows_each_failure_once_as_it_happens_and_counts_per_type() -> None:
    src = FakeSource({"a-1": "a", "a-2": "a", "bad": "b", "after": "c"})
    rec = Recorder()
    now = [0.0]
    tracker = Tracker("r1", 4, src, rec, lambda t: f"updraft logs r1 {t}", clock=lambda: now[0])
    tracker({"RUNNING": 2, "WAITING": 2})
    assert src.failed_calls == 0  # no failure counted: the source is not asked
    src.ended_ids = ["a-1", "bad", "after"]
    src.failures = [Failed("bad", "FAILED", "NONZERO_EXIT", 1, "exit code 3", ("boom",)),
                    Failed("after", "UPSTREAM_FAILED", "UPSTREAM", parent="bad")]
    now[0] = 2.0
    tracker({"SUCCEEDED": 1, "RUNNING": 1, "FAILED": 1, "UPSTREAM_FAILED": 1})
    now[0] = 3.0
    tracker({"SUCCEEDED": 1, "RUNNING": 1, "FAILED": 1, "UPSTREAM_FAILED": 1})
    assert [[f.task_id for f in batch] for batch in rec.failed_batches] == [["bad", "after"]]
    assert src.failed_calls == 1
    src.ended_ids.append("a-2")
    final = tracker.close("FAILED", {"SUCCEEDED": 2, "FAILED": 1, "UPSTREAM_FAILED": 1})
    assert final.percent == 100 and final.done == 4 and final.eta_s is None
    assert final.types == (TypeRow("a", 2, 2), TypeRow("b", 1, 1), TypeRow("c", 1, 1))
    assert rec.frames[1].percent == 75 and rec.frames[1].eta_s is not None


def test_percent_is_100_only_when_every_task_ended() -> None:
    frame = Frame("r", "RUNNING", 1000, {"SUCCEEDED": 999}, (), 1.0, None)
    assert frame.percent == 99
    assert Frame("r", "SUCCEEDED", 0, {}, (), 0.0, None).percent == 100


def test_the_estimate_uses_only_tasks_ended_while_watching() -> None:
    est = Estimator()
    assert est(0.0, 50, 100) is None  # a resume: 50 were done before
    assert est(5.0, 50, 100) is None
    assert est(10.0, 60, 100) == pytest.approx(40.0)  # 10 tasks in 10 s, 40 left
    assert est(11.0, 100, 100) == 0.0


def test_split_log_keeps_the_account_and_the_last_lines() -> None:
    tail = "the command exited with code 3\n" + "\n".join(f"line {i}" for i in range(20))
    assert split_log(tail) == ("the command exited with code 3", tuple(f"line {i}" for i in range(15, 20)))
    assert split_log("exit 3\nout", "exit 3") == ("exit 3", ("out",))
    assert split_log(None) == ("", ())


class Clock:
    def __init__(self) -> None:
        self.t = 0.0

    def __call__(self) -> float:
        return self.t


def test_plain_lines_are_timestamped_and_progress_comes_at_most_every_n_seconds() -> None:
    out = io.StringIO()
    clock = Clock()
    plain = PlainDisplay(out, every_s=10, clock=clock, now=lambda: 0.0)
    plain.start("r1", 3, "workdir /w")

    def frame(done: int, state: str = "RUNNING") -> Frame:
        return Frame("r1", state, 3, {"SUCCEEDED": done, "WAITING": 3 - done}, (), clock.t, None)

    plain.frame(frame(0))
    clock.t = 1
    plain.frame(frame(1))  # changed, but within 10 s of the last progress line
    clock.t = 11
    plain.frame(frame(1))
    plain.frame(frame(1))  # unchanged: not repeated
    plain.failed([Failed("bad", "FAILED", "OOM", 2, "memory", ("x",)),
                  *(Failed(f"c{i}", "UPSTREAM_FAILED", "UPSTREAM", parent="bad") for i in range(5))],
                 lambda t: f"updraft logs r1 {t}")
    plain.close(frame(3, "FAILED"))
    lines = out.getvalue().splitlines()
    assert all(ln.startswith("1970-01-01T00:00:00Z ") for ln in lines)
    body = [ln[21:] for ln in lines]
    assert body == [
        "run r1: 3 tasks (workdir /w)",
        "run r1 RUNNING",
        "progress 0/3 done (0%) waiting=3; 0:00 elapsed",
        "progress 1/3 done (33%) ok=1 waiting=2; 0:11 elapsed",
        "FAILED bad (attempt 2): OOM: memory",
        "  | x",
        "  logs: updraft logs r1 bad",
        "UPSTREAM_FAILED c0, c1, c2 and 2 more: not run, because bad failed",
        "run r1 FAILED: 3/3 done (100%) ok=3 in 0:11",
    ]
    assert skipped_text("p", ["a"]) == "UPSTREAM_FAILED a: not run, because p failed"


class GoneTerminal(io.StringIO):
    """A stream whose terminal was closed: every write fails with EIO."""

    def write(self, s: str) -> int:
        raise OSError(errno.EIO, "Input/output error")

    def isatty(self) -> bool:
        return True


def test_a_display_whose_terminal_is_gone_goes_quiet() -> None:
    plain = PlainDisplay(GoneTerminal())
    plain.start("r1", 1, "here")
    plain.close(Frame("r1", "CANCELLED", 1, {"CANCELLED": 1}, (), 1.0, None))
    assert plain.broken
    live = LiveDisplay(GoneTerminal())
    live.start("r1", 1, "here")
    live.frame(Frame("r1", "RUNNING", 1, {"RUNNING": 1}, (), 1.0, None))
    live.close(Frame("r1", "CANCELLED", 1, {"CANCELLED": 1}, (), 1.0, None))
    assert live.broken


@pytest.mark.parametrize("width", [40, 80, 200])
def test_the_live_frame_fits_the_terminal_whatever_it_shows(width: int) -> None:
    live = LiveDisplay(io.StringIO())
    live.console.size = (width, 50)
    types = tuple(TypeRow(f"a-very-long-task-type-name-number-{i}" * 2, i * 1000, 10**6) for i in range(12))
    counts = {"RUNNING": 123456, "SUCCEEDED": 9876543, "CACHED": 55555, "FAILED": 4444, "UPSTREAM_FAILED": 333333,
              "WAITING": 2222222, "READY": 1111}
    frame = Frame("20261207-042121-5fbed0b7", "RUNNING", 12_000_000, counts, types, 98765.4, 123456.7)
    with live.console.capture() as cap:
        live.console.print(live._render(frame))
    lines = ANSI.sub("", cap.get()).splitlines()
    assert lines and max(len(ln) for ln in lines) <= width, lines
    assert sum(ln.startswith("  a-very") for ln in lines) == 7  # the rest is one line
    assert any("5 more task types" in ln for ln in lines)


def test_a_costly_look_for_failures_is_not_repeated_at_once_but_the_end_shows_them_all() -> None:
    now = [0.0]

    class SlowSource(FakeSource):
        def failed(self, known: Collection[str]) -> list[Failed]:
            now[0] += 1.0  # each look costs a second
            return super().failed(known)

    src = SlowSource({"f1": "t", "f2": "t"})
    rec = Recorder()
    tracker = Tracker("r1", 2, src, rec, str, clock=lambda: now[0])
    src.failures = [Failed("f1", "FAILED", "OOM")]
    tracker({"FAILED": 1, "RUNNING": 1})
    src.failures.append(Failed("f2", "FAILED", "OOM"))
    now[0] += 5.0
    tracker({"FAILED": 2})  # within 20 looks' cost of the last: not asked yet
    assert src.failed_calls == 1
    tracker.close("FAILED", {"FAILED": 2})
    assert src.failed_calls == 2
    assert [[f.task_id for f in b] for b in rec.failed_batches] == [["f1"], ["f2"]]


def test_many_failures_at_once_are_shown_up_to_a_limit_then_counted() -> None:
    out = io.StringIO()
    plain = PlainDisplay(out, now=lambda: 0.0)
    plain.start("r1", 30, "here")
    plain.failed([Failed(f"t{i}", "FAILED", "NONZERO_EXIT") for i in range(25)], lambda t: t)
    lines = out.getvalue().splitlines()
    assert sum(bool(re.search(r"Z FAILED t\d+: NONZERO_EXIT$", ln)) for ln in lines) == 20
    assert lines[-1].endswith("... and 5 more FAILED tasks: updraft status r1 --state FAILED")


@pytest.mark.parametrize(("text", "every"), [("", 10.0), ("2.5", 2.5), ("0", 0.0), ("soon", 10.0), ("-1", 10.0),
                                             ("nan", 10.0), ("inf", 10.0)])
def test_progress_every_takes_seconds_and_names_a_bad_value(monkeypatch: pytest.MonkeyPatch, text: str,
                                                           every: float) -> None:
    from chalicelib.ui.display import plain_every

    monkeypatch.setenv("UPDRAFT_PROGRESS_EVERY", text)
    out = io.StringIO()
    assert plain_every(out) == every
    assert ("is not a number of seconds" in out.getvalue()) == (every == 10.0 and text != "")


def test_text_from_the_run_is_printed_as_is_never_read_as_markup() -> None:
    live = LiveDisplay(io.StringIO())
    live.console.size = (80, 24)
    with live.console.capture() as cap:
        live.console.print("run r1: 1 tasks (workdir /data/[bold]x[/])")
    assert "(workdir /data/[bold]x[/])" in ANSI.sub("", cap.get())
