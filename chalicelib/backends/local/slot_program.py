"""Which program the function pool's slots run: the C slot (slot.c), built once per machine
with the C compiler found there and checked before its first use, else the Python slot
(slot.py). Both speak the protocol slot.py describes and behave alike; the C one spends about
a third of the CPU per task (see docs/benchmarks.md).

    UPDRAFT_SLOT=python    always use the Python slot

The build lands in ~/.cache/updraft/bin (or $XDG_CACHE_HOME/updraft/bin) as
`updraft-slot-<hash of the source>-<machine>`: a changed source is built anew, once. A build
that fails (no compiler, a C library without posix_spawn_file_actions_addchdir_np) leaves the
compiler's message in `<name>.failed` and is not tried again; delete that file to retry.
"""

from __future__ import annotations

import functools
import hashlib
import os
import shutil
import sys

from chalicelib.backends.local.slot import encode_job, parse_reports

SOURCE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "slot.c")
_BUILD_TIMEOUT_S = 120


def python_slot() -> list[str]:
    # -S: no site packages (their .pth files cost a start-up tens of ms); the slot needs only
    # the standard library and this package, found through PYTHONPATH
    return [sys.executable, "-S", "-m", "chalicelib.backends.local.slot"]


def slot_command() -> list[str]:
    """The argv that starts one slot."""
    if os.environ.get("UPDRAFT_SLOT", "").lower() == "python":
        return python_slot()
    native = native_slot()
    return [native] if native is not None else python_slot()


@functools.cache
def native_slot() -> str | None:
    """The built C slot, building it on first use; None where it cannot be built."""
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    try:
        return build(os.path.join(base, "updraft", "bin"))
    except OSError:
        return None


def build(folder: str, compiler: str | None = None) -> str | None:
    """Path of the C slot built in `folder` (built and checked now if it is not there yet);
    None when it cannot be built or fails its check (the reason is in `<path>.failed`)."""
    with open(SOURCE, "rb") as fh:
        digest = hashlib.sha256(fh.read()).hexdigest()[:16]
    path = os.path.join(folder, f"updraft-slot-{digest}-{os.uname().machine or 'unknown'}")
    if os.access(path, os.X_OK):
        return path
    if os.path.exists(path + ".failed"):
        return None
    cc = compiler or os.environ.get("CC") or shutil.which("cc") or shutil.which("gcc") or shutil.which("clang")
    os.makedirs(folder, exist_ok=True)
    if cc is None:
        _write(path + ".failed", "no C compiler found (cc, gcc, clang or $CC): the Python slot is used\n")
        return None
    import subprocess  # only when building: a few ms of every start-up otherwise

    tmp = f"{path}.{os.getpid()}.tmp"
    try:
        try:
            done = subprocess.run([cc, "-O2", "-o", tmp, SOURCE], capture_output=True, text=True,
                                  timeout=_BUILD_TIMEOUT_S)
            problem = f"{cc} failed:\n{done.stderr}" if done.returncode else check(tmp)
        except (OSError, subprocess.SubprocessError) as exc:
            problem = f"could not run {cc}: {exc}"
        if problem:
            _write(path + ".failed", problem + "\n")
            return None
        os.replace(tmp, path)
        return path
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def check(program: str) -> str | None:
    """Run one job through a slot program and check its reports; None when it behaved."""
    import subprocess
    import tempfile

    with tempfile.TemporaryDirectory(prefix="updraft-slot-check-") as box:
        log = os.path.join(box, "log")
        job = encode_job(7, "/bin/sh", ["sh", "-c", "echo checked; exit 3"], [b"PATH=/usr/bin:/bin"], box, log)
        try:
            done = subprocess.run([program], input=job, capture_output=True, timeout=30)
        except (OSError, subprocess.SubprocessError) as exc:
            return f"the built slot did not run: {exc}"
        try:
            reports = parse_reports(bytearray(done.stdout))
        except (ValueError, IndexError) as exc:
            return f"the built slot's reports do not parse ({exc}): {done.stdout[:200]!r}"
        kinds = [(r[0], r[1]) for r in reports]
        if kinds != [("S", 7), ("X", 7)] or reports[1][2] != 3:
            return f"the built slot reported {reports!r} for a job that exits 3"
        with open(log) as fh:
            if fh.read() != "checked\n":
                return "the built slot's job did not write its log"
    return None


def _write(path: str, text: str) -> None:
    tmp = f"{path}.{os.getpid()}.tmp"
    with open(tmp, "w") as fh:
        fh.write(text)
    os.replace(tmp, path)
