"""A run's cost, by service: compute (functions, containers) and the control plane.

The control plane is Updraft's own overhead: DynamoDB writes for every state transition and
parent count, SQS requests for every event and container message, S3 requests for every file
staged in or out and every log. The simulator counts them from the real coordinator's store
calls; the planner's estimator uses `ControlPlane.typical` (the same counts the coordinator
makes on a run without failures).
"""

from __future__ import annotations

from msgspec import Struct

from chalicelib.planner.pricing import PriceTable


class ControlPlane(Struct, frozen=True):
    """Request counts of one run."""

    write_units: float = 0.0
    read_units: float = 0.0
    sqs_requests: float = 0.0
    s3_puts: float = 0.0
    s3_gets: float = 0.0

    @classmethod
    def typical(cls, tasks: int, edges: int, container_tasks: int, objects_in: int, objects_out: int) -> ControlPlane:
        # Measured on the simulator (tests keep them close): per task create, dispatch, started,
        # finished; per edge one parent count; a container worker's claim; about 0.7 reads per
        # task (run state, counts: skipped when the batch launched a task). Events: started +
        # finished, each sent, received and deleted; container tasks add their queue message.
        return cls(
            write_units=4.0 * tasks + 1.0 * edges + container_tasks,
            read_units=0.7 * tasks,
            sqs_requests=3.0 * (2 * tasks + container_tasks),
            s3_puts=float(objects_out + tasks),  # outputs + one log per task
            s3_gets=float(objects_in),
        )

    def prices(self, prices: PriceTable) -> tuple[float, float, float]:
        """(DynamoDB, SQS, S3) dollars."""
        dynamodb = self.write_units * prices.dynamodb.per_write_unit + self.read_units * prices.dynamodb.per_read_unit
        sqs = self.sqs_requests * prices.sqs.per_request_standard
        s3 = self.s3_puts * prices.s3.per_put + self.s3_gets * prices.s3.per_get
        return dynamodb, sqs, s3


class Cost(Struct, frozen=True):
    functions: float = 0.0
    containers: float = 0.0
    dynamodb: float = 0.0
    sqs: float = 0.0
    s3: float = 0.0

    @property
    def compute(self) -> float:
        return self.functions + self.containers

    @property
    def control(self) -> float:
        return self.dynamodb + self.sqs + self.s3

    @property
    def total(self) -> float:
        return self.compute + self.control

    @classmethod
    def of(cls, functions: float, containers: float, control: ControlPlane, prices: PriceTable) -> Cost:
        dynamodb, sqs, s3 = control.prices(prices)
        return cls(functions, containers, dynamodb, sqs, s3)

    def to_dict(self) -> dict[str, float]:
        return {
            "functions": self.functions, "containers": self.containers, "dynamodb": self.dynamodb,
            "sqs": self.sqs, "s3": self.s3, "total": self.total,
        }


def dollars(x: float) -> str:
    """Money for tables: enough digits to compare small runs."""
    if x >= 100:
        return f"${x:,.0f}"
    if x >= 1:
        return f"${x:.2f}"
    if x >= 0.01 or x == 0:
        return f"${x:.4f}"
    return f"${x:.3g}" if x >= 0.001 else f"${x:.2g}"
