"""Reading CPU masks as /proc shows them (Cpus_allowed_list: "0-3,6")."""

from __future__ import annotations


def cpu_set(text: str) -> set[int]:
    """"0-3,6" -> {0, 1, 2, 3, 6}"""
    out: set[int] = set()
    for part in text.strip().split(","):
        lo, _, hi = part.partition("-")
        out.update(range(int(lo), int(hi or lo) + 1))
    return out


def allowed(status_line: str) -> set[int]:
    """The CPUs of a "Cpus_allowed_list:\t0-1" line."""
    return cpu_set(status_line.split(":", 1)[1])
