"""Start a task's process (posix_spawn with the child's working folder set in the child) and
reap it.

`spawn` calls the C library's posix_spawn (vfork + exec, about half of a fork + exec) through
ctypes, with `posix_spawn_file_actions_addchdir_np` so the child starts in its sandbox
without the spawner changing its own working folder. That makes it safe to call from
several threads at once, and ctypes releases the GIL for the call, so a thread blocked while
the kernel execs the child (long on a busy machine) holds up nothing else.

The child gets: stdin from /dev/null, stdout and stderr to the log file (created, truncated),
a new session (its own process group, so the whole tree can be killed), an empty signal mask
and default handling of SIGPIPE and SIGXFSZ (which Python ignores; a task must not inherit
that, as `subprocess` ensures for the same reason) and of SIGINT (which a slot ignores).

Where that C interface is missing (no glibc >= 2.29 or equivalent), `spawn` falls back to
os.posix_spawn with a chdir around the call under a lock, and THREAD_SAFE is False: callers
then spawn from one thread only.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import resource
import signal
import threading
from collections.abc import Mapping

_OPEN_LOG = os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW  # never through a planted symlink
_SETSIGDEF, _SETSIGMASK, _SETSID = 0x04, 0x08, 0x80  # glibc's POSIX_SPAWN_* flags
_OPAQUE = 1024  # bytes for posix_spawn_file_actions_t / posix_spawnattr_t (glibc: 80 / 336)
# set back to their default in the child: Python ignores SIGPIPE and SIGXFSZ, a slot ignores
# SIGINT, and an ignored signal stays ignored across exec
_DEFAULTED = (signal.SIGPIPE, signal.SIGXFSZ, signal.SIGINT)


def _load_libc() -> ctypes.CDLL | None:
    # The C library is already loaded (Python links it): look the symbols up in the process
    # first; find_library("c") runs `ldconfig -p`, tens of milliseconds a slot start-up.
    for name in (None, "find"):
        try:
            if name:
                from ctypes import util  # only where the lookup in the process failed

                libc = ctypes.CDLL(util.find_library("c"), use_errno=True)
            else:
                libc = ctypes.CDLL(None, use_errno=True)
            libc.posix_spawn_file_actions_addchdir_np  # noqa: B018 - glibc >= 2.29, macOS >= 10.15
            return libc
        except (OSError, AttributeError, TypeError):
            continue
    return None


_libc = _load_libc()
THREAD_SAFE = _libc is not None
_fallback_lock = threading.Lock()


def _check(err: int, what: str, detail: str = "") -> None:
    if err:
        raise OSError(err, f"{what}: {os.strerror(err)}{detail}")


class _Attr:
    """One posix_spawnattr_t, made once and only read by posix_spawn (safe to share)."""

    def __init__(self, libc: ctypes.CDLL) -> None:
        self.buf = ctypes.create_string_buffer(_OPAQUE)
        _check(libc.posix_spawnattr_init(self.buf), "posix_spawnattr_init")
        default = ctypes.create_string_buffer(128)  # sigset_t
        empty = ctypes.create_string_buffer(128)
        libc.sigemptyset(default)
        libc.sigemptyset(empty)
        for sig in _DEFAULTED:
            libc.sigaddset(default, int(sig))
        _check(libc.posix_spawnattr_setsigdefault(self.buf, default), "posix_spawnattr_setsigdefault")
        _check(libc.posix_spawnattr_setsigmask(self.buf, empty), "posix_spawnattr_setsigmask")
        _check(libc.posix_spawnattr_setflags(self.buf, ctypes.c_short(_SETSIGDEF | _SETSIGMASK | _SETSID)),
               "posix_spawnattr_setflags")


_attr = _Attr(_libc) if _libc is not None else None


def _cstrings(items: list[bytes]) -> ctypes.Array[ctypes.c_char_p]:
    return (ctypes.c_char_p * (len(items) + 1))(*items, None)


def spawn(exe: str, argv: list[str], env: Mapping[bytes, bytes] | list[bytes], cwd: str, log_path: str) -> int:
    """Start `exe` with `argv` in `cwd`; returns the pid. `env` is a mapping or a list of
    "NAME=value" entries. Raises OSError if it cannot start (a missing program, a folder that
    is not there)."""
    if _libc is None or _attr is None:
        return _spawn_fallback(exe, argv, env, cwd, log_path)
    libc = _libc
    actions = ctypes.create_string_buffer(_OPAQUE)
    _check(libc.posix_spawn_file_actions_init(actions), "posix_spawn_file_actions_init")
    try:
        _check(libc.posix_spawn_file_actions_addopen(actions, 0, os.devnull.encode(), os.O_RDONLY, 0), "addopen")
        _check(libc.posix_spawn_file_actions_addopen(actions, 1, os.fsencode(log_path), _OPEN_LOG, 0o644), "addopen")
        _check(libc.posix_spawn_file_actions_adddup2(actions, 1, 2), "adddup2")
        _check(libc.posix_spawn_file_actions_addchdir_np(actions, os.fsencode(cwd)), "addchdir")
        pid = ctypes.c_int(0)
        c_argv = _cstrings([os.fsencode(a) for a in argv])
        c_env = _cstrings(env if isinstance(env, list) else [k + b"=" + v for k, v in env.items()])
        err = libc.posix_spawn(ctypes.byref(pid), os.fsencode(exe), actions, _attr.buf, c_argv, c_env)
        _check(err, f"could not start {exe}", f" (in {cwd})")
        return pid.value
    finally:
        libc.posix_spawn_file_actions_destroy(actions)


def _spawn_fallback(
    exe: str, argv: list[str], env: Mapping[bytes, bytes] | list[bytes], cwd: str, log_path: str,
) -> int:
    """os.posix_spawn cannot set the child's folder before Python 3.13: switch ours around the
    call (under a lock; the callers use absolute paths only)."""
    if isinstance(env, list):
        env = dict(e.split(b"=", 1) for e in env)
    log = os.open(log_path, _OPEN_LOG, 0o644)
    actions = [
        (os.POSIX_SPAWN_OPEN, 0, os.devnull, os.O_RDONLY, 0),
        (os.POSIX_SPAWN_DUP2, log, 1),
        (os.POSIX_SPAWN_DUP2, log, 2),
    ]
    with _fallback_lock:
        here = os.getcwd()
        try:
            os.chdir(cwd)
            return os.posix_spawn(exe, argv, env, file_actions=actions, setsid=True, setsigdef=_DEFAULTED)
        finally:
            os.chdir(here)
            os.close(log)


_peak_kb = 0


def reap_process(pid: int) -> tuple[int, int]:
    """Wait for a task's process, kill what is left of its process group (descendants that
    outlived it belong to the attempt too); returns (exit code, peak RSS KiB of the process).

    The kernel's peak for a vfork'ed child includes the spawner's memory at exec time, so it
    counts only when above the spawner's own peak (asked of the kernel only when it could be
    lower: it only grows); else it is 0 and the sampled tree RSS stands.
    """
    global _peak_kb
    _, status, usage = os.wait4(pid, 0)
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pid, signal.SIGKILL)
    maxrss = usage.ru_maxrss
    if maxrss > _peak_kb:
        _peak_kb = own_peak_kb()
    return os.waitstatus_to_exitcode(status), maxrss if maxrss > _peak_kb else 0


def own_peak_kb() -> int:
    """This process's peak resident set since its exec (VmHWM). getrusage's figure is no use
    here: it includes the peak of the process this one was spawned from (a slot started by a
    large engine would call every smaller task's peak unknown)."""
    try:
        with open("/proc/self/status", "rb") as fh:
            for line in fh:
                if line.startswith(b"VmHWM:"):
                    return int(line.split()[1])
    except (OSError, ValueError, IndexError):
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # no /proc: errs towards "unknown"
