"""runner/spawn.py: where the child starts, what it inherits, and spawning from many threads."""

from __future__ import annotations

import os
import signal
import threading
from pathlib import Path

import pytest

from chalicelib.runner import spawn as sp

ENV = {os.fsencode(k): os.fsencode(v) for k, v in os.environ.items()}
PROBE = "pwd; ps -o sid= -p $$; cat; echo to-stderr >&2; exec grep -E '^Sig(Ign|Blk)' /proc/self/status"


def run(tmp_path: Path, spawn_fn: object = sp.spawn) -> list[str]:
    box = tmp_path / "box"
    box.mkdir(exist_ok=True)
    log = tmp_path / "log"
    pid = spawn_fn("/bin/sh", ["sh", "-c", PROBE], ENV, str(box), str(log))  # type: ignore[operator]
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
    lines = log.read_text().splitlines()
    assert lines[0] == str(box)  # started in its folder
    assert int(lines[1]) == pid  # leads a session of its own
    assert lines[2] == "to-stderr"  # stderr to the log; stdin was /dev/null, so `cat` printed nothing
    masks = {k: int(v, 16) for k, v in (line.split(":\t") for line in lines[3:])}
    sig_ign, sig_blk = masks["SigIgn"], masks["SigBlk"]
    for sig in (signal.SIGPIPE, signal.SIGXFSZ):
        assert not sig_ign & (1 << (sig - 1)), f"{sig.name} ignored in the task"
    assert sig_blk == 0
    return lines


@pytest.mark.parametrize("spawn_fn", [sp.spawn, sp._spawn_fallback], ids=["libc", "fallback"])
def test_the_child_starts_in_its_folder_with_default_signals_and_its_own_session(
    tmp_path: Path, spawn_fn: object,
) -> None:
    here = os.getcwd()
    run(tmp_path, spawn_fn)
    assert os.getcwd() == here  # the spawner's own folder did not move


def test_the_c_library_path_is_used_here() -> None:
    assert sp.THREAD_SAFE  # glibc >= 2.29 on the machines we support; else the pool serialises spawns


def test_a_missing_program_or_folder_is_an_oserror_naming_it(tmp_path: Path) -> None:
    with pytest.raises(OSError, match="/no/such/program"):
        sp.spawn("/no/such/program", ["x"], ENV, str(tmp_path), str(tmp_path / "log"))
    with pytest.raises(OSError, match="missing-folder"):
        sp.spawn("/bin/true", ["true"], ENV, str(tmp_path / "missing-folder"), str(tmp_path / "log"))


def test_many_threads_spawning_at_once_each_get_their_own_folder(tmp_path: Path) -> None:
    errors: list[str] = []

    def worker(i: int) -> None:
        box = tmp_path / f"b{i}"
        box.mkdir()
        for j in range(20):
            log = box / f"log{j}"
            pid = sp.spawn("/bin/sh", ["sh", "-c", "pwd"], ENV, str(box), str(log))
            os.waitpid(pid, 0)
            if log.read_text().strip() != str(box):
                errors.append(f"{box}: {log.read_text()!r}")

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
