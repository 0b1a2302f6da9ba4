"""Runs ONE task attempt: stage in, execute, check exit code and outputs, stage out, report.

Used unchanged by the task function (Lambda), the Fargate worker and the local pools.
"""

from chalicelib.runner.execute import TaskOutcome, TaskRequest, run_task

__all__ = ["TaskOutcome", "TaskRequest", "run_task"]
