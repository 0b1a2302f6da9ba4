"""Orchestration cost per task and per dependency edge, measured on the emulated cloud.

Each shape runs trivial tasks (`true`, dependencies by `after`, no files) so that only the
orchestration is counted: the API's submit, the coordinator, the task function's claim and
report, the worker's queue traffic, the destinations and the event source mapping's
receive/delete. Every AWS request goes through the counting server (DynamoDB capacity units
estimated from the items each request moved); Lambda requests are the async Invokes plus the
coordinator's invocations. Empty polls (workers, event source mapping) are a fixed cost per
hour, not per task, and are left out.

Two shapes per placement - N independent tasks, and the same N tasks with E edges - give
cost = a*N + b*E per service, solved for a (per task) and b (per edge).

    python -m tests.e2e.test_cloud_benchmark [--tasks 60] [--write docs/benchmarks.md]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests import doc_sections
from tests.e2e.test_cloud_harness import Delivery, EmulatedCloud, emulated_cloud

pytestmark = pytest.mark.slow

# On-demand prices, us-east-1, read from the AWS pricing pages on 2026-11-01.
PRICES = {
    "dynamodb_wru": 0.625,  # $ per million write request units
    "dynamodb_rru": 0.125,  # $ per million read request units
    "sqs_request": 0.40,  # $ per million requests (standard queue, 64 KB chunks)
    "lambda_request": 0.20,  # $ per million requests
    "sfn_transition": 25.0,  # $ per million state transitions (Standard workflows)
}
SFN_TRANSITIONS_PER_TASK = 2  # at least: one Task state entered, one transition out
TARGET_FRACTION = 0.2  # orchestration must cost under a fifth of Step Functions Standard's
INTRO = """## Orchestration cost on AWS (emulated cloud)

Measured with `python -m tests.e2e.test_cloud_benchmark --write docs/benchmarks.md` (the
emulated-cloud harness of tests/e2e: the app's real handlers and worker process against a
moto server that counts every request by service and operation; DynamoDB capacity units are
computed from the size of the items each request moved). Tasks are `true` with dependencies
by `after`, so only orchestration is counted: submit, coordinator, the task function's claim
and report, the worker's queue traffic, Lambda destinations, and the event source mapping's
receive and delete. Empty polls (idle workers, the event source mapping) are a fixed cost of
about 200 requests per poller-hour at 20 s long polls, not a per-task one, and are left out.
Per-task and per-edge figures are solved from two shapes of the same size (no edges; 4 parents
per child). Prices: us-east-1 on-demand, read 2026-11-01 - DynamoDB $0.625 per million write
units and $0.125 per million read units, SQS $0.40 per million requests, Lambda $0.20 per
million requests; Step Functions Standard $25 per million state transitions, counted at 2 per
task (one Task state entered, one transition out), i.e. $50 per million tasks. Target: under a
fifth of that, $10 per million tasks.

Where the writes go, per function task: dispatch, claim, completion (3 conditional updates of
its own item), the claim's counter update (the task function is not inside a coordinator
batch), a share of the coordinator's one counter update per batch; per edge: one conditional
decrement of the child (`ADD dp :parent, SET pend = pend - 1`). Loaded and trickle differ by
how many events share a coordinator batch (one `counts` read, one counter write, one SQS
receive and delete per batch); Lambda's event source mapping fills batches of 10 under load.
Figures are requests (units for DynamoDB) per task or per edge; negative values are noise of
the subtraction (a few hundredths).
"""
MARK_START = "<!-- updraft:aws-orchestration-cost:start -->"
MARK_END = "<!-- updraft:aws-orchestration-cost:end -->"


def independent(n: int, placement: str) -> dict[str, Any]:
    return {"name": f"independent-{n}", "defaults": {"placement": placement, "resources": {"timeout_s": 60}},
            "tasks": [{"id": f"t{i}", "command": ["true"]} for i in range(n)]}


def layered(n: int, fan_in: int, placement: str) -> dict[str, Any]:
    """n/2 parents and n/2 children, each child after `fan_in` parents: n*fan_in/2 edges."""
    half = n // 2
    parents = [{"id": f"p{i}", "command": ["true"]} for i in range(half)]
    children = [{"id": f"c{i}", "command": ["true"], "after": [f"p{(i + k) % half}" for k in range(fan_in)]}
                for i in range(half)]
    return {"name": f"layered-{n}", "defaults": {"placement": placement, "resources": {"timeout_s": 60}},
            "tasks": parents + children}


@dataclass
class Measure:
    tasks: int
    edges: int
    requests: Counter[tuple[str, str]]
    wru: float
    rru: float
    lambda_requests: int
    batches: list[int]
    seconds: float

    def by_service(self) -> dict[str, float]:
        out: dict[str, float] = {"lambda": float(self.lambda_requests), "dynamodb_wru": self.wru,
                                 "dynamodb_rru": self.rru}
        for (service, op), n in self.requests.items():
            if op.endswith("(empty)") or service == "ecs":
                continue
            out[service] = out.get(service, 0.0) + n
        return out


def measure(ec: EmulatedCloud, workflow: dict[str, Any], edges: int) -> Measure:
    before, units = ec.server.snapshot(), Counter(ec.server.units)
    invokes, coord, batches = ec.fake_lambda.invokes, ec.tally.coordinator_invocations, len(ec.tally.batches)
    started = time.monotonic()
    resp = ec.post("/runs", {"workflow": workflow})
    assert resp.status_code == 202, resp.json_body
    final = ec.run_until_done(resp.json_body["run_id"], timeout_s=240)
    assert final["state"] == "SUCCEEDED", final
    after = ec.server.snapshot()
    requests = after - before
    lambda_requests = (ec.fake_lambda.invokes - invokes) + (ec.tally.coordinator_invocations - coord) + 1  # +API
    return Measure(len(workflow["tasks"]), edges, requests, ec.server.units["WRU"] - units["WRU"],
                   ec.server.units["RRU"] - units["RRU"], lambda_requests, ec.tally.batches[batches:],
                   time.monotonic() - started)


def per_unit(flat: Measure, deep: Measure) -> tuple[dict[str, float], dict[str, float]]:
    """Solve cost = a*N + b*E from a run without edges and one with them (same N)."""
    a = {k: v / flat.tasks for k, v in flat.by_service().items()}
    deep_services = deep.by_service()
    b = {k: (deep_services.get(k, 0.0) - a.get(k, 0.0) * deep.tasks) / deep.edges for k in deep_services}
    return a, b


def dollars_per_million(units: dict[str, float]) -> dict[str, float]:
    return {
        "DynamoDB": units.get("dynamodb_wru", 0.0) * PRICES["dynamodb_wru"]
        + units.get("dynamodb_rru", 0.0) * PRICES["dynamodb_rru"],
        "SQS": units.get("sqs", 0.0) * PRICES["sqs_request"],
        "Lambda": units.get("lambda", 0.0) * PRICES["lambda_request"],
    }


def run_shapes(workdir: Path, n: int, fan_in: int, loaded: bool) -> dict[str, tuple[Measure, Measure]]:
    delivery = Delivery(invocations_per_round=10 if loaded else 1)
    results: dict[str, tuple[Measure, Measure]] = {}
    with emulated_cloud(workdir, delivery) as ec:
        for placement in ("function", "container"):
            flat = measure(ec, independent(n, placement), 0)
            deep = measure(ec, layered(n, fan_in, placement), n * fan_in // 2)
            results[placement] = (flat, deep)
    return results


def model(results: dict[str, tuple[Measure, Measure]]) -> dict[str, dict[str, float]]:
    """Units per task for each placement and per edge. An edge costs the coordinator the same
    whatever the placement, so it is solved on the function runs, whose batching does not
    depend on a worker process's timing; container tasks are costed on their flat run."""
    out: dict[str, dict[str, float]] = {}
    a, b = per_unit(*results["function"])
    out["function task"], out["edge"] = a, b
    flat = results["container"][0]
    out["container task"] = {k: v / flat.tasks for k, v in flat.by_service().items()}
    return out


def report(results: dict[str, tuple[Measure, Measure]], title: str) -> str:
    lines = [f"### {title}", "",
             "| per | Lambda req | SQS req | DynamoDB WRU | DynamoDB RRU | $ per million (DynamoDB + SQS + Lambda) |",
             "|---|---:|---:|---:|---:|---:|"]
    for label, units in model(results).items():
        cost = dollars_per_million(units)
        lines.append(f"| {label} | {units.get('lambda', 0):.2f} | {units.get('sqs', 0):.2f} | "
                     f"{units.get('dynamodb_wru', 0):.2f} | {units.get('dynamodb_rru', 0):.2f} | "
                     f"{sum(cost.values()):.2f} ({cost['DynamoDB']:.2f} + {cost['SQS']:.2f} + {cost['Lambda']:.2f}) |")
    batches = [s for flat, deep in results.values() for s in flat.batches + deep.batches]
    lines += ["", f"Coordinator batches: {len(batches)}, {sum(batches) / max(1, len(batches)):.1f} events each "
              "on average.", ""]
    return "\n".join(lines)


def operations_table(results: dict[str, tuple[Measure, Measure]]) -> str:
    """Requests per task (each placement's flat run) and per edge (the function runs)."""
    flat_f, deep_f = results["function"]
    flat_c = results["container"][0]
    ops = sorted(op for op in set(flat_f.requests) | set(deep_f.requests) | set(flat_c.requests)
                 if not op[1].endswith("(empty)") and op[0] != "ecs")
    lines = ["| operation | per function task | per container task | per edge |", "|---|---:|---:|---:|"]
    for op in ops:
        a = flat_f.requests[op] / flat_f.tasks
        b = (deep_f.requests[op] - a * deep_f.tasks) / deep_f.edges
        lines.append(f"| {op[0]} {op[1]} | {a:.2f} | {flat_c.requests[op] / flat_c.tasks:.2f} | {b:.2f} |")
    return "\n".join(lines)


def workflow_cost(units: dict[str, dict[str, float]], tasks: int, edges: int, container_share: float) -> float:
    """$ per million tasks of a workflow with this many edges and this share of containers."""
    per_task = ((1 - container_share) * sum(dollars_per_million(units["function task"]).values())
                + container_share * sum(dollars_per_million(units["container task"]).values()))
    return per_task + edges / tasks * sum(dollars_per_million(units["edge"]).values())


def test_orchestration_costs_under_a_fifth_of_step_functions(tmp_path: Path) -> None:
    results = run_shapes(tmp_path, n=16, fan_in=2, loaded=True)
    units = model(results)
    sfn = PRICES["sfn_transition"] * SFN_TRANSITIONS_PER_TASK
    text = report(results, "test run")
    for share in (0.0, 0.5, 1.0):  # Montage has ~2 edges per task
        assert workflow_cost(units, 100, 200, share) < TARGET_FRACTION * sfn, text
    assert 0.9 <= units["edge"]["dynamodb_wru"] <= 1.5, text  # an edge is one conditional decrement
    assert units["function task"]["lambda"] < 2.5, text  # the invoke, plus a share of a coordinator batch


def montage_cost(workdir: Path) -> str:
    """The small Montage (mixed placements) measured end to end, data plane included."""
    import json

    from examples.montage import generate as montage
    from tests.e2e.test_cloud_montage import mixed, upload_dir

    summary = montage.generate(str(workdir / "gen"), degrees=0.2, seed=1)
    workflow = mixed(json.loads(Path(str(summary["workflow"])).read_text()))
    with emulated_cloud(workdir, Delivery(invocations_per_round=10)) as ec:
        data = upload_dir(ec, Path(str(summary["data"])), "inputs/montage/")
        from chalicelib.engine.spec import RunSpec
        from chalicelib.workflow.formats import native

        edges = RunSpec.of(native.from_data(workflow)).graph.edge_count
        before, units = ec.server.snapshot(), Counter(ec.server.units)
        invokes, coord = ec.fake_lambda.invokes, ec.tally.coordinator_invocations
        resp = ec.post("/runs", {"workflow": workflow, "data": data})
        final = ec.run_until_done(resp.json_body["run_id"], timeout_s=280)
        assert final["state"] == "SUCCEEDED", final
        requests = ec.server.snapshot() - before
        wru, rru = ec.server.units["WRU"] - units["WRU"], ec.server.units["RRU"] - units["RRU"]
        lam = ec.fake_lambda.invokes - invokes + ec.tally.coordinator_invocations - coord + 1
    n = len(workflow["tasks"])
    orch = {"lambda": lam, "dynamodb_wru": wru, "dynamodb_rru": rru,
            "sqs": sum(v for (svc, op), v in requests.items() if svc == "sqs" and not op.endswith("(empty)"))}
    s3 = sum(v for (svc, _), v in requests.items() if svc == "s3")
    cost = dollars_per_million({k: v / n for k, v in orch.items()})
    sfn = PRICES["sfn_transition"] * SFN_TRANSITIONS_PER_TASK
    total = sum(cost.values())
    return "\n".join([
        f"### The small Montage mosaic ({n} tasks, {edges} edges, half in containers)", "",
        "| | Lambda req | SQS req | DynamoDB WRU | DynamoDB RRU | S3 req (data plane) |",
        "|---|---:|---:|---:|---:|---:|",
        f"| whole run | {lam} | {orch['sqs']} | {wru:.0f} | {rru:.0f} | {s3} |",
        f"| per task | {lam / n:.2f} | {orch['sqs'] / n:.2f} | {wru / n:.2f} | {rru / n:.2f} | {s3 / n:.2f} |",
        "",
        f"Orchestration: ${total:.2f} per million tasks (DynamoDB {cost['DynamoDB']:.2f}, SQS {cost['SQS']:.2f}, "
        f"Lambda requests {cost['Lambda']:.2f}); Step Functions Standard at {SFN_TRANSITIONS_PER_TASK} transitions "
        f"per task: ${sfn:.2f}. Ratio: {total / sfn:.2f} (target < {TARGET_FRACTION}).", "",
    ])


def write_section(path: Path, body: str) -> None:
    doc_sections.write_section(path, MARK_START, MARK_END, body)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--tasks", type=int, default=60)
    parser.add_argument("--fan-in", type=int, default=4)
    parser.add_argument("--write", type=Path, default=None, help="update this markdown file's section")
    args = parser.parse_args()
    parts = [INTRO]
    for loaded, title in ((True, "Loaded: up to 10 completions per coordinator batch"),
                          (False, "Trickle: one task completion at a time")):
        with tempfile.TemporaryDirectory() as tmp:
            results = run_shapes(Path(tmp), args.tasks, args.fan_in, loaded)
        parts.append(report(results, title))
        parts.append(operations_table(results))
        parts.append("")
    with tempfile.TemporaryDirectory() as tmp:
        parts.append(montage_cost(Path(tmp)))
    body = "\n".join(parts)
    print(body)
    if args.write is not None:
        write_section(args.write, body)


if __name__ == "__main__":
    main()
