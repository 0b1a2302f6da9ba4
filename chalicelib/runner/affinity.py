"""Keep the local runtime's event loop on one CPU; give every process it starts all of them.

A chain of short tasks is a relay between the loop and one task at a time: spawn, sleep until
it exits, record it, spawn the next. With the loop free to move, each hand-over crosses CPUs:
the kernel places a new process on the idlest CPU (waking it from idle: on a virtual machine a
round trip through the hypervisor), the loop wakes on another when the child execs and again
when it exits. Measured on the 2-core benchmark machine, a 1,500-link chain of `true` took
3.48 s with the loop free and 2.61 s with it pinned (medians of 4, alternating); a 2,000-task
fan-out 1.98 -> 1.88 s.

A pinned loop must not pin its work: a process inherits its parent's CPU mask, and a vfork'ed
child has exec'd by the time posix_spawn returns, so the loop widens each child right then
(`release`), and the slot and worker processes that spawn tasks themselves the same way.
`release_tree` widens whatever an inline-spawned task started before that (threads or
children created in the microseconds between exec and the widening): called at its first limit
sample, so nothing the task runs stays on one CPU longer than that.

The pin is let go for one loop turn every `hold_s` and taken again on whichever CPU the
scheduler woke the loop on: two runs on one machine that started on the same CPU part.

Linux only; elsewhere, with a single allowed CPU, or with UPDRAFT_PIN=0, nothing changes.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import threading
from collections.abc import Callable

from chalicelib.runner.procs import children

_setaffinity = getattr(os, "sched_setaffinity", None)
_WIDE: frozenset[int] = frozenset(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else frozenset()


def _load_getcpu() -> Callable[[], int] | None:
    """The C library's sched_getcpu (Python 3.11 has no wrapper), if it works here."""
    try:
        getcpu = ctypes.CDLL(None).sched_getcpu
    except (OSError, AttributeError):
        return None
    getcpu.restype, getcpu.argtypes = ctypes.c_int, []
    return getcpu if getcpu() >= 0 else None


_sched_getcpu = _load_getcpu()
_pins = 0  # loops pinned in this process: only then can a child have inherited a pin
_pins_lock = threading.Lock()


def available() -> bool:
    return (_setaffinity is not None and _sched_getcpu is not None and len(_WIDE) > 1
            and os.environ.get("UPDRAFT_PIN", "1") != "0")


def _widen(pid: int) -> None:
    assert _setaffinity is not None
    with contextlib.suppress(OSError):  # already gone, or not ours to change
        _setaffinity(pid, _WIDE)


def release(pid: int) -> bool:
    """Give a process a pinned loop just started every CPU; False (nothing done) when no loop
    of this process is pinned."""
    if not _pins:
        return False
    _widen(pid)
    return True


def release_thread() -> None:
    """Give the calling thread (started by a pinned loop) every CPU."""
    if _pins:
        _widen(0)


def release_tree(pid: int) -> None:
    """Every thread of `pid` and of its descendants gets every CPU."""
    if not _pins:
        return
    stack, seen = [pid], set()
    while stack:
        p = stack.pop()
        if p in seen:
            continue
        seen.add(p)
        try:
            tids = [int(t) for t in os.listdir(f"/proc/{p}/task")]
        except (OSError, ValueError):
            continue
        for tid in tids:
            _widen(tid)
        stack.extend(children(p))


class LoopPin:
    """`with LoopPin() as pin:` keeps the calling thread on its current CPU; call `pin.tick(now)`
    once per loop turn (monotonic seconds) to let go of it for one turn every `hold_s`."""

    def __init__(self, hold_s: float = 1.0) -> None:
        self.hold_s = hold_s
        self.active = False  # pinning in use at all
        self.pinned = False
        self._until = 0.0

    def __enter__(self) -> LoopPin:
        global _pins
        if available():
            self.active = True
            with _pins_lock:
                _pins += 1
        return self

    def __exit__(self, *exc: object) -> None:
        global _pins
        if not self.active:
            return
        if self.pinned:
            _widen(0)
            self.pinned = False
        with _pins_lock:
            _pins -= 1
        self.active = False

    def tick(self, now: float) -> None:
        if not self.active:
            return
        if not self.pinned:
            assert _setaffinity is not None and _sched_getcpu is not None
            cpu = _sched_getcpu()
            if cpu in _WIDE:
                _setaffinity(0, {cpu})
                self.pinned = True
                self._until = now + self.hold_s
        elif now >= self._until:
            _widen(0)  # one turn free: the next wake-up may land elsewhere, and is pinned there
            self.pinned = False
