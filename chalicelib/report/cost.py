"""What each task would cost on AWS, from the planner's dated price table.

A function-placed task is one Lambda invocation at its memory size (request + GB-seconds). A
container-placed (or local) task is charged the Fargate rate of the smallest task size that
fits its cpus and memory, for the seconds it ran: workers are shared by many tasks, so the
one-minute Fargate minimum is not charged per task. Cached tasks ran no compute and cost 0.
Without the price table (chalicelib/planner/pricing.py), only GB-seconds are reported.
"""

from __future__ import annotations

from typing import Any

from chalicelib.report.model import TaskRow


class CostModel:
    def __init__(self, prices: Any = None, arch: str = "x86_64") -> None:
        self.arch = arch
        self.prices = prices if prices is not None else _price_table()

    @property
    def priced(self) -> bool:
        return self.prices is not None

    def task_cost(self, task: TaskRow) -> float | None:
        """Dollars for the task's last attempt; None when there is no price table."""
        if self.prices is None:
            return None
        if task.cached or task.started_at is None:
            return 0.0
        seconds = task.seconds()
        if task.placement == "function":
            return float(self.prices.functions.invocation_cost(task.memory_mb, seconds, self.arch))
        from chalicelib.planner.pricing import fargate_size

        try:
            vcpus, memory = fargate_size(task.cpus, task.memory_mb)
        except ValueError:
            return None
        return float(self.prices.containers.rate_per_s(vcpus, memory, self.arch)) * seconds

    def note(self) -> str:
        if self.prices is None:
            return ("No price table is available (chalicelib/planner/pricing.py), so cost is given as "
                    "GB-seconds only: memory in GB times seconds run.")
        return (f"Estimated AWS cost, {self.prices.region} on-demand {self.arch} prices read on "
                f"{self.prices.read_on}: function tasks as one Lambda invocation each (request + GB-s), "
                "container and local tasks at the Fargate rate of the smallest size fitting their cpus and "
                "memory, per second run (workers are shared, so no per-task minimum). Cached tasks cost 0. "
                "Compute only: DynamoDB, SQS and S3 requests are not included.")


def _price_table() -> Any:
    try:
        from chalicelib.planner.pricing import PRICES
    except ImportError:
        return None
    return PRICES
