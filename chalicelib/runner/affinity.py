"""Keep the local runtime's event loop and its slot processes on one CPU each; give every
task they start all of them.

A chain of short tasks is a relay between the loop and one task at a time: spawn, sleep until
it exits, record it, spawn the next. With the loop free to move, each hand-over crossed CPUs:
the kernel places a new process on the idlest CPU (waking it from idle: on a virtual machine a
round trip through the hypervisor), and the loop woke elsewhere when the child exec'd and
again when it exited. A slot process (function_pool.py) is the same relay for wide workflows.
Measured on the 2-core benchmark machine (medians, alternating): a 300-link chain of `true`
1.009 -> 0.786 s with the loop pinned; 2,000 independent tasks 2.25 -> 1.89 s and a 20 x 100
DAG 2.50 -> 2.18 s with the slots pinned as well.

Pinned spawners must not pin their work: a process inherits its parent's CPU mask, and a
vfork'ed child has exec'd by the time posix_spawn returns, so the spawner widens each child
right then (`release` here; slot.c and slot.py do the same for their tasks). `release_tree`
widens whatever a task started before that (threads or children created before the spawner
got to it): the pool calls it at the task's first limit sample, so nothing a task runs stays
on one CPU longer than that. Slots are placed round robin (`slot_env`); the loop keeps to the
CPU it was on, lets go of it for `free_s` every `hold_s` and then keeps to wherever the
scheduler woke it: two runs on one machine that started on the same CPU part.

Linux only; elsewhere, with a single allowed CPU, or with UPDRAFT_PIN=0, nothing changes.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import threading
from collections.abc import Callable

from chalicelib.runner.procs import tree

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
    of this process is pinned (then it inherited every CPU anyway)."""
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
    if not _setaffinity or not _WIDE:
        return
    for p in tree(pid):
        try:
            tids = [int(t) for t in os.listdir(f"/proc/{p}/task")]
        except (OSError, ValueError):
            continue
        for tid in tids:
            _widen(tid)


def slot_env(index: int) -> dict[str, str]:
    """Environment for the function pool's slot `index`: keep to a CPU of its own (round robin
    over the engine's), give its tasks all of them. Empty when pinning is off."""
    if not available():
        return {}
    cpus = sorted(_WIDE)
    return {"UPDRAFT_SLOT_CPU": str(cpus[index % len(cpus)]), "UPDRAFT_TASK_CPUS": ",".join(map(str, cpus))}


class LoopPin:
    """`with LoopPin() as pin:` keeps the calling thread on its current CPU; call `pin.tick(now)`
    once per loop turn (monotonic seconds): every `hold_s` it lets go for `free_s` (time for the
    loop to sleep and be woken where the scheduler likes), then keeps to the CPU it is on."""

    def __init__(self, hold_s: float = 1.0, free_s: float = 0.01) -> None:
        self.hold_s = hold_s
        self.free_s = free_s
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
        if not self.active or now < self._until:
            return
        if not self.pinned:
            assert _setaffinity is not None and _sched_getcpu is not None
            cpu = _sched_getcpu()
            if cpu in _WIDE:
                _setaffinity(0, {cpu})
                self.pinned = True
                self._until = now + self.hold_s
        else:
            _widen(0)  # free for a moment: the loop's next wake-ups may land elsewhere
            self.pinned = False
            self._until = now + self.free_s
