"""Log tails and whole logs are read in bounded memory (issue 22, D11), and say the same as
reading the log whole would."""

from __future__ import annotations

import argparse
import io
import sys
import tracemalloc
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from chalicelib.backends.local.fs_blobs import FsBlobStore
from chalicelib.engine.records import TaskRecord
from chalicelib.engine.states import TaskState
from chalicelib.runner.keys import log_key
from chalicelib.runner.log_read import chunks, last_lines_start, tail_bytes
from chalicelib.ui import views

BIG = 48 << 20


class _Store:
    """A blob store without get_range: read whole, as before."""

    def __init__(self, data: bytes) -> None:
        self.data = data

    def size(self, key: str) -> int:
        return len(self.data)

    def get_bytes(self, key: str) -> bytes:
        return self.data


@settings(max_examples=200, deadline=None)
@given(st.lists(st.sampled_from([b"a", b"bc", b"\n", b"\n\n", b"xyz\n"]), max_size=30),
       st.integers(0, 8), st.integers(1, 5))
def test_last_lines_match_splitlines(parts: list[bytes], lines: int, block: int) -> None:
    data = b"".join(parts)
    start = last_lines_start(_Store(data), "k", lines, block=block)  # type: ignore[arg-type]
    want = data.splitlines(keepends=True)[-lines:] if lines else []
    assert data[start:] == b"".join(want)
    assert b"".join(chunks(_Store(data), "k", start, block=block)) == data[start:]  # type: ignore[arg-type]


def _big_log(tmp_path: Path) -> tuple[FsBlobStore, str]:
    blobs = FsBlobStore(str(tmp_path / "blobs"))
    key = log_key("r1", "t", 1)
    path = Path(blobs.path(key))
    path.parent.mkdir(parents=True)
    line = b"0123456789" * 10 + b"\n"
    with open(path, "wb") as fh:
        for _ in range(BIG // len(line)):
            fh.write(line)
        fh.write(b"the end\n")
    return blobs, key


def _peak(fn: object) -> int:
    tracemalloc.start()
    try:
        fn()  # type: ignore[operator]
        return tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


def test_dashboard_tail_of_a_big_log_is_read_from_its_end(tmp_path: Path) -> None:
    blobs, key = _big_log(tmp_path)
    rec = TaskRecord(run_id="r1", task_id="t", state=TaskState.FAILED, attempt=1, placement="function", pending=0)
    text: list[str | None] = []
    peak = _peak(lambda: text.append(views.log_text(rec, blobs)))
    assert text[0] is not None and text[0].endswith("the end\n")
    assert len(text[0]) == views.LOG_TAIL_BYTES
    assert peak < 4 << 20, f"{peak >> 20} MB to show a {views.LOG_TAIL_BYTES >> 10} KB tail"
    assert tail_bytes(blobs, key, 8) == b"the end\n"


@pytest.mark.parametrize("tail", [None, 3])
def test_logs_command_streams_a_big_log(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, tail: int | None) -> None:
    from chalicelib import cli

    blobs, key = _big_log(tmp_path)
    sink = open(tmp_path / "out", "wb")  # noqa: SIM115 - closed below
    monkeypatch.setattr(sys, "stdout", io.TextIOWrapper(sink))
    try:
        peak = _peak(lambda: cli._copy_log(blobs, key, tail))
    finally:
        sys.stdout.flush()
        sink.close()
    out = (tmp_path / "out").read_bytes()
    if tail is None:
        assert len(out) == blobs.size(key) and out.endswith(b"the end\n")
    else:
        assert out == b"0123456789" * 10 + b"\n" + b"0123456789" * 10 + b"\n" + b"the end\n"
    assert peak < 4 << 20, f"{peak >> 20} MB to print a {BIG >> 20} MB log"


def test_logs_tail_option_parses() -> None:
    from chalicelib.cli import build_parser

    args = build_parser().parse_args(["logs", "r1", "t", "--tail", "5"])
    assert isinstance(args, argparse.Namespace) and args.tail == 5
