"""Runs ONE task attempt: stage in, execute, check exit code and outputs, stage out, report.

Used unchanged by the task function (Lambda), the Fargate worker and the local pools. The
names below load runner.execute on first use, so that runner.spawn alone stays light (the
local pool's slot processes import only it).
"""

from __future__ import annotations

TYPE_CHECKING = False  # not typing's: importing typing costs a slot process ~20 ms
if TYPE_CHECKING:
    from chalicelib.runner.execute import TaskOutcome, TaskRequest, run_task

__all__ = ["TaskOutcome", "TaskRequest", "run_task"]


def __getattr__(name: str) -> object:
    if name in __all__:
        from chalicelib.runner import execute

        return getattr(execute, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
