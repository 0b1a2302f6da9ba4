"""Load on the emulated cloud: one big workflow and many concurrent submissions, all to the end.

    python -m tests.faults.load [--tasks 10000] [--submissions 50] [--json] [--write docs/benchmarks.md]

(scripts/bench-load runs the full size and writes its section of docs/benchmarks.md;
tests/faults/test_load.py runs a smaller size in CI.)

The big workflow is layers of 100 `true` tasks, each after two tasks of the layer before (a
container task every 50, the rest functions). The submissions are a small workflow with
files (fan-out of three, join; one container task) posted at once by 16 threads, each
thread its own API function instance (its own Cloud and clients, as concurrent Lambda
instances are). Then the real coordinator, task function and worker process run everything
to the end, and every run is checked: SUCCEEDED, and the invariants of tests/faults.

Reported: wall time of each phase, tasks per second, the peak memory (RSS) of the process
that holds moto and runs every handler and of the worker process, and the requests by
service. The emulated cloud is far slower than AWS (every request goes through moto, in the
same process as the handlers): the figures measure Updraft's overhead and memory, not AWS's.
"""

from __future__ import annotations

import argparse
import json
import resource
import sys
import tempfile
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from chalicelib.backends.aws import api
from chalicelib.backends.aws.components import Cloud
from chalicelib.engine.states import TERMINAL_RUN
from tests import doc_sections
from tests.e2e.test_cloud_harness import Delivery, EmulatedCloud, emulated_cloud
from tests.faults.invariants import check_invariants

WIDTH = 100
SUBMIT_THREADS = 16


def big_workflow(n: int) -> dict[str, Any]:
    tasks: list[dict[str, Any]] = []
    for i in range(n):
        level, slot = divmod(i, WIDTH)
        after = [] if level == 0 else sorted({f"t{(level - 1) * WIDTH + slot}",
                                               f"t{(level - 1) * WIDTH + (slot + 1) % WIDTH}"})
        tasks.append({"id": f"t{i}", "command": ["true"], "after": [a for a in after if int(a[1:]) < n],
                      **({"placement": "container"} if i % 50 == 49 else {})})
    return {"name": f"load-{n}", "defaults": {"placement": "function", "resources": {"timeout_s": 60}},
            "tasks": tasks}


def small_workflow(k: int) -> dict[str, Any]:
    return {"name": f"small-{k}", "defaults": {"placement": "function", "resources": {"timeout_s": 60}}, "tasks": [
        {"id": "gen", "shell": f"echo {k} > n.txt", "outputs": ["n.txt"]},
        *({"id": f"p{j}", "shell": f"read n < n.txt; echo $((n * {j + 2})) > p{j}.txt", "inputs": ["n.txt"],
           "outputs": [f"p{j}.txt"], **({"placement": "container"} if j == 2 else {})} for j in range(3)),
        {"id": "join", "shell": "cat p0.txt p1.txt p2.txt | paste -sd+ - | bc > sum.txt",
         "inputs": ["p0.txt", "p1.txt", "p2.txt"], "outputs": ["sum.txt"]},
    ]}


@dataclass
class LoadResult:
    tasks: int
    submissions: int
    submit_big_s: float = 0.0
    submit_concurrent_s: float = 0.0
    run_s: float = 0.0
    total_tasks: int = 0
    tasks_per_s: float = 0.0
    peak_rss_mb: float = 0.0  # this process: moto with every item, and every handler
    worker_peak_rss_mb: float = 0.0  # the largest child process: the worker
    coordinator_batches: int = 0
    mean_batch: float = 0.0
    requests: dict[str, int] = field(default_factory=dict)
    failures: list[str] = field(default_factory=list)

    def ok(self) -> bool:
        return not self.failures


def submit_concurrently(ec: EmulatedCloud, bodies: list[dict[str, Any]]) -> list[str]:
    """POST /runs from SUBMIT_THREADS API instances at once (api.post_run is what the route
    calls; Chalice's in-process test client has one current request, so it cannot be shared)."""
    instances = [Cloud.from_env(env={}, endpoint_url=ec.server.url, **ec.config) for _ in range(SUBMIT_THREADS)]

    def post(i: int) -> str:
        status, reply = api.post_run(instances[i % SUBMIT_THREADS], {"workflow": bodies[i]}, None)
        if status != 202:
            raise AssertionError(f"submission {i}: {status} {reply}")
        return str(reply["run_id"])

    with ThreadPoolExecutor(max_workers=SUBMIT_THREADS) as pool:
        return list(pool.map(post, range(len(bodies))))


def drive(ec: EmulatedCloud, run_ids: list[str], timeout_s: float) -> None:
    """Deliver invocations and coordinator batches until every run has finished.

    Each round runs a few async invocations (two events each: the function's own send and its
    destination record), then coordinator batches until the events queue is drained: the
    queue stays short, as it does in AWS where the event source mapping scales the
    coordinator out. (moto's SQS costs O(queue length) per received message, so a queue left to
    grow would make the emulator, not Updraft, the thing measured.)"""
    deadline = time.monotonic() + timeout_s
    left = set(run_ids)
    idle = 0
    while left:
        if time.monotonic() > deadline:
            raise AssertionError(f"{len(left)} runs unfinished after {timeout_s} s")
        busy = False
        for _ in range(ec.delivery.invocations_per_round):
            busy = ec.deliver_invocation() or busy
        for _ in range(4 * ec.delivery.invocations_per_round):  # a round makes at most 2 events per invocation
            if not ec.deliver_batch():
                break
            busy = True
        ec.check_workers()
        idle = 0 if busy else idle + 1
        if not busy and idle % 20 == 1:  # quiet: see which runs are done
            left = {r for r in left if ec.cloud.store.get_run(r).state not in TERMINAL_RUN}
        if not busy:
            time.sleep(0.02)


def peak_rss_mb(pid: int) -> float:
    """A live process's peak resident set (VmHWM), in MB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return round(int(line.split()[1]) / 1024, 1)
    return 0.0


def run_load(workdir: Path, tasks: int, submissions: int, timeout_s: float = 3600.0) -> LoadResult:
    result = LoadResult(tasks, submissions)
    with emulated_cloud(workdir, Delivery(invocations_per_round=5), max_workers=1) as ec:
        t0 = time.monotonic()
        resp = ec.post("/runs", big_workflow(tasks))
        if resp.status_code != 202:
            raise AssertionError(f"the big workflow was refused: {resp.json_body}")
        big = str(resp.json_body["run_id"])
        result.submit_big_s = round(time.monotonic() - t0, 2)
        t1 = time.monotonic()
        small = submit_concurrently(ec, [small_workflow(k) for k in range(submissions)])
        result.submit_concurrent_s = round(time.monotonic() - t1, 2)
        t2 = time.monotonic()
        drive(ec, [big, *small], timeout_s)
        result.run_s = round(time.monotonic() - t2, 2)
        result.total_tasks = tasks + 5 * submissions
        result.tasks_per_s = round(result.total_tasks / max(result.run_s, 1e-9), 1)
        for run_id in [big, *small]:
            state = ec.cloud.store.get_run(run_id).state.value
            if state != "SUCCEEDED":
                result.failures.append(f"{run_id}: {state}")
            broken = check_invariants(ec.cloud.store, ec.cloud.blobs, run_id, ec.cloud.specs.get(run_id))
            result.failures.extend(f"{run_id}: {b}" for b in broken[:3])
        for k, run_id in enumerate(small):
            total = ec.cloud.blobs.get_bytes(f"runs/{run_id}/data/sum.txt").strip()
            if total != str(9 * k).encode():  # k*2 + k*3 + k*4
                result.failures.append(f"{run_id}: sum {total!r}, expected {9 * k}")
        result.coordinator_batches = ec.tally.coordinator_invocations
        result.mean_batch = round(sum(ec.tally.batches) / max(1, len(ec.tally.batches)), 2)
        by_service: Counter[str] = Counter()
        for (service, _op), n in ec.server.snapshot().items():
            by_service[service] += n
        result.requests = dict(sorted(by_service.items()))
        result.worker_peak_rss_mb = max((peak_rss_mb(p.pid) for p in ec.workers if p.poll() is None), default=0.0)
    result.peak_rss_mb = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)
    return result


MARK_START = "<!-- updraft:load:start -->"
MARK_END = "<!-- updraft:load:end -->"


def section(r: LoadResult, command: str) -> str:
    requests = ", ".join(f"{service} {n:,}" for service, n in r.requests.items())
    return f"""## Load on the emulated cloud

Measured with `{command}` ({time.strftime("%Y-%m-%d")}): one workflow of {r.tasks:,} `true` tasks
(layers of {WIDTH}, each task after two of the layer before; every 50th a container task, the
rest functions) and {r.submissions} small workflows with files (5 tasks, one a container task)
submitted at once by {SUBMIT_THREADS} concurrent API instances, then everything run to the end
by the real coordinator, task function and worker process against moto. Every run ended
SUCCEEDED with the invariants of tests/faults holding. moto answers each request in about
10 ms, in the same process as the handlers, so throughput here measures the emulator; memory
and request counts are Updraft's. CI runs the same at 400 tasks + 50 submissions
(tests/faults/test_load.py; `UPDRAFT_LOAD_TASKS` sets the size).

| | |
|---|---:|
| tasks in all | {r.total_tasks:,} |
| submit the {r.tasks:,}-task workflow (validate, S3, BatchWriteItem) | {r.submit_big_s:.1f} s |
| {r.submissions} concurrent submissions | {r.submit_concurrent_s:.1f} s |
| run everything to the end | {r.run_s:.0f} s ({r.tasks_per_s:.1f} tasks/s) |
| coordinator invocations (mean events per batch) | {r.coordinator_batches:,} ({r.mean_batch:.1f}) |
| peak RSS, harness process (moto holding every item + every handler) | {r.peak_rss_mb:.0f} MB |
| peak RSS, worker process | {r.worker_peak_rss_mb:.0f} MB |
| requests by service | {requests} |
"""


def write_section(path: Path, body: str) -> None:
    doc_sections.write_section(path, MARK_START, MARK_END, body)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--tasks", type=int, default=10_000)
    parser.add_argument("--submissions", type=int, default=50)
    parser.add_argument("--timeout-s", type=float, default=3600.0)
    parser.add_argument("--json", action="store_true", help="print the result as one JSON line")
    parser.add_argument("--write", type=Path, default=None, help="update this markdown file's load section")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="updraft-load-") as tmp:
        result = run_load(Path(tmp), args.tasks, args.submissions, args.timeout_s)
    if args.write is not None and result.ok():
        write_section(args.write, section(result, f"scripts/bench-load --tasks {args.tasks} "
                                                  f"--submissions {args.submissions}"))
    if args.json:
        print(json.dumps(asdict(result)))
    else:
        for key, value in asdict(result).items():
            print(f"{key}: {value}")
    return 0 if result.ok() else 1


if __name__ == "__main__":
    sys.exit(main())
