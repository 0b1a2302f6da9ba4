"""Numbers read from workflow files, requests and traces: finite and within sane bounds.

Python's json accepts NaN, Infinity and -Infinity, turns 1e400 into infinity and reads
10**400 as an int that no float can hold. Every reader passes each number it takes through
`finite` (or `number_problem`) so that such a value becomes a problem naming its task and
field rather than an OverflowError or ValueError deep inside the planner or the runner.

The bounds are far beyond anything real and far below where float arithmetic overflows: the
planner, the simulator and replay multiply and sum these numbers over 250,000 tasks.
"""

from __future__ import annotations

import math
from typing import Any

MAX_SECONDS = 366 * 86_400.0  # a timeout or a recorded runtime: one year
MAX_BYTES = float(2**60)  # a file size or memory in bytes: 1 EiB
MAX_HINT = 1e18  # any other hint (threads, percentages, ...)


def finite(value: Any) -> float | None:
    """`value` as a float when it is a number (not a bool) that is finite, else None. An int
    too large to be a float (10**400) counts as not finite."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    try:
        as_float = float(value)
    except OverflowError:
        return None
    return as_float if math.isfinite(as_float) else None


def describe(value: Any) -> str:
    """A short rendering of a bad number for a message (a 4,000-digit int is not quoted)."""
    if isinstance(value, int) and not isinstance(value, bool) and finite(value) is None:
        return "an integer too large for a float"
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."


def number_problem(value: Any, low: float | None = None, high: float | None = None,
                   unit: str = "") -> str | None:
    """Why `value` is not a usable number in [low, high], or None when it is."""
    number = finite(value)
    if number is None:
        if isinstance(value, bool) or not isinstance(value, int | float):
            return f"must be a number, got {describe(value)}"
        return f"must be a finite number, got {describe(value)} (NaN, Infinity and overflowing values are refused)"
    if low is not None and number < low:
        return f"must be at least {low:g}{unit}, got {number:g}"
    if high is not None and number > high:
        return f"must be at most {high:g}{unit}, got {number:g}"
    return None


def hint_bounds(name: str) -> tuple[float, float, str]:
    """(low, high, unit) of a task hint by its name: runtimes in seconds, sizes in bytes."""
    if name == "runtime_s" or name.endswith("_s"):
        return 0.0, MAX_SECONDS, " s"
    if name.startswith("size:") or "bytes" in name:
        return 0.0, MAX_BYTES, " bytes"
    return -MAX_HINT, MAX_HINT, ""
