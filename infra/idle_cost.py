"""What a deployed stage costs per month while no workflow runs (docs/deploy.md quotes it).

    python -m infra.idle_cost

Nothing in the stack is billed by the hour except the SQS interface endpoint, and only while
the task function mounts EFS (TaskFunctionInVpc). The rest of an idle bill is per request:
the sweeper's schedule, and Lambda's pollers long-polling the two queues that trigger
functions (events, submit). Storage is per GB kept, none at first. Lambda, SQS and
DynamoDB prices come from the planner's table (chalicelib/planner/pricing.py); the few
others are here. us-east-1, on-demand, no free tier.
"""

from __future__ import annotations

from dataclasses import dataclass

from chalicelib.planner.pricing import PRICES

HOURS_PER_MONTH = 730.0
MINUTES_PER_MONTH = HOURS_PER_MONTH * 60


@dataclass(frozen=True)
class IdlePrices:
    """List prices not in the planner's table (us-east-1; the AWS pricing pages as of 2026-11)."""

    interface_endpoint_az_hour: float = 0.01  # AWS PrivateLink, per endpoint per AZ
    efs_standard_gb_month: float = 0.30
    ecr_gb_month: float = 0.10
    logs_ingest_gb: float = 0.50  # CloudWatch Logs, standard class


@dataclass(frozen=True)
class Idle:
    """How an idle stage behaves (stack, .chalice/config.json and Lambda's SQS pollers)."""

    task_function_in_vpc: bool = True
    endpoint_azs: int = 1  # SqsInterfaceEndpoint's subnets
    sweep_minutes: int = 2  # UPDRAFT_SWEEP_MINUTES
    sweeper_mb: int = 512  # the sweeper's memory (.chalice/config.json)
    sweeper_s: float = 1.0  # billed time of an idle sweep (a query, a queue length, a service read)
    sweeper_log_kb: float = 1.0  # START/END/REPORT lines and a summary
    polled_queues: int = 2  # SQS triggers: the coordinator's events queue, the submit queue
    pollers_per_queue: int = 5  # Lambda's pollers on an idle queue ...
    poll_wait_s: float = 20.0  # ... each a long poll of 20 s
    worker_image_gb: float = 0.6  # workers/Dockerfile: Python slim + Montage + BLAST+, compressed


def monthly(idle: Idle = Idle(), prices: IdlePrices = IdlePrices()) -> list[tuple[str, float]]:
    """(item, US$ per month) of an idle stage; storage of kept data comes on top."""
    lam, sqs, ddb = PRICES.functions, PRICES.sqs, PRICES.dynamodb
    sweeps = MINUTES_PER_MONTH / idle.sweep_minutes
    polls = idle.polled_queues * idle.pollers_per_queue * MINUTES_PER_MONTH * 60 / idle.poll_wait_s
    lines = [
        ("SQS interface endpoint (task function in the VPC)",
         prices.interface_endpoint_az_hour * idle.endpoint_azs * HOURS_PER_MONTH if idle.task_function_in_vpc else 0.0),
        ("sweeper runs (Lambda)", sweeps * lam.invocation_cost(idle.sweeper_mb, idle.sweeper_s)),
        ("sweeper reads (DynamoDB, SQS)", sweeps * (ddb.per_read_unit + sqs.per_request_standard)),
        ("sweeper logs", sweeps * idle.sweeper_log_kb / 1024 / 1024 * prices.logs_ingest_gb),
        ("Lambda's pollers on the SQS triggers", polls * sqs.per_request_standard),
        ("worker image in ECR", idle.worker_image_gb * prices.ecr_gb_month),
    ]
    return lines


def total(idle: Idle = Idle()) -> float:
    return sum(cost for _, cost in monthly(idle))


def main() -> int:
    for in_vpc in (True, False):
        idle = Idle(task_function_in_vpc=in_vpc)
        print(f"idle stage, task function {'in the VPC (EFS cache)' if in_vpc else 'outside the VPC (--no-efs)'}:")
        for item, cost in monthly(idle):
            print(f"  {item:<52} ${cost:6.2f}")
        print(f"  {'total per month':<52} ${total(idle):6.2f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
