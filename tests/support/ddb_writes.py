"""DynamoDB write units per partition key over a whole run, on moto (issue 23 item 7).

The real coordinator and DynamoStateStore run a layered workflow to the end: the coordinator
handles events in batches of EVENTS_BATCH_SIZE (as the events queue delivers them), each
Launch is claimed as the task function claims it (outside a batch: its own counter write),
and every attempt succeeds with a result shaped like the runner's. A proxy around the DynamoDB
client charges each write as DynamoDB bills it - 1 write unit per KB, rounded up, of the
larger of the item before and after the write (read back from moto: the real item sizes), a
failed conditional write the size of the item it found, a transaction twice - to the item's
partition key, in the window of 1,000 completions it happened in. At 1,000 completions per
second a window is one second, so a window's units per key are that key's WCU/s at that rate.

Used by scripts/bench-ddb-writes (the figures in docs/benchmarks.md) and by
tests/contract/test_dynamodb_partitions.py (the bound, on a smaller run).
"""

from __future__ import annotations

import hashlib
import math
import random
import tempfile
from collections import Counter, defaultdict, deque
from collections.abc import Sequence
from typing import Any

from msgspec import Struct

from chalicelib.attempt import AttemptResult, CacheUse
from chalicelib.backends.aws.claims import claim
from chalicelib.backends.aws.clients import AwsClients, error_code
from chalicelib.backends.aws.dynamodb_state import DynamoStateStore, create_table
from chalicelib.backends.aws.wiring import EVENTS_BATCH_SIZE
from chalicelib.backends.local.fs_blobs import FsBlobStore
from chalicelib.engine import events as ev
from chalicelib.engine.coordinator import Coordinator
from chalicelib.engine.lifecycle import create_run
from chalicelib.engine.spec import RunSpec, SpecCache
from chalicelib.engine.states import RunState
from chalicelib.workflow.model import Task, Workflow
from tests.contract.awskit import config_for, mocked_aws
from tests.e2e.test_cloud_harness import item_size

RATE = 1000  # completions per second the figures are scaled to
WINDOW = 1000  # completions per window (one second at RATE); a smaller run uses smaller windows
PARTITION_WCU_S = 1000  # DynamoDB's per-partition write limit
NEW_ON_DEMAND_WCU_S = 4000  # what a new on-demand table takes before it scales


def units(size: int) -> int:
    return max(1, math.ceil(size / 1024))


class WriteMeter:
    """A DynamoDB client proxy that charges every write to its partition key."""

    def __init__(self, client: Any, table: str) -> None:
        self._client, self._table = client, table
        self.window = 0  # set by the driver: completions so far // the window
        self.by_key: Counter[str] = Counter()
        self.by_window: defaultdict[int, Counter[str]] = defaultdict(Counter)
        self.sizes: Counter[str] = Counter()  # item kind -> largest size seen
        self.writes = 0

    def __getattr__(self, name: str) -> Any:
        return getattr(self._client, name)

    def _charge(self, pk: str, wcu: int) -> None:
        self.by_key[pk] += wcu
        self.by_window[self.window][pk] += wcu
        self.writes += 1

    def _now_size(self, key: dict[str, Any]) -> int:
        """The item's size as moto keeps it (read from moto's backend: not a request)."""
        from moto.core import DEFAULT_ACCOUNT_ID
        from moto.dynamodb.models import dynamodb_backends
        from moto.dynamodb.models.dynamo_type import DynamoType

        table = dynamodb_backends[DEFAULT_ACCOUNT_ID][self._client.meta.region_name].get_table(self._table)
        item = table.get_item(DynamoType(key["pk"]), DynamoType(key["sk"]))
        return int(item.size()) if item is not None else 0

    def _note(self, key: dict[str, Any], size: int) -> None:
        sk = key["sk"]["S"]
        kind = "task" if sk.startswith("T#") else "edge" if sk.startswith("E#") else sk
        self.sizes[kind] = max(self.sizes[kind], size)

    def update_item(self, **kw: Any) -> Any:
        key = kw["Key"]
        before = self._now_size(key)
        try:
            resp = self._client.update_item(**kw)
        except Exception as exc:
            if error_code(exc) == "ConditionalCheckFailedException":
                self._charge(key["pk"]["S"], units(before))
            raise
        after = self._now_size(key)
        self._note(key, after)
        self._charge(key["pk"]["S"], units(max(before, after)))
        return resp

    def put_item(self, **kw: Any) -> Any:
        item = kw["Item"]
        key = {"pk": item["pk"], "sk": item["sk"]}
        before = self._now_size(key)
        try:
            resp = self._client.put_item(**kw)
        except Exception as exc:
            if error_code(exc) == "ConditionalCheckFailedException":
                self._charge(item["pk"]["S"], units(before))
            raise
        self._note(key, item_size(item))
        self._charge(item["pk"]["S"], units(max(before, item_size(item))))
        return resp

    def batch_write_item(self, **kw: Any) -> Any:
        resp = self._client.batch_write_item(**kw)
        left = {id(r) for reqs in (resp.get("UnprocessedItems") or {}).values() for r in reqs}
        for reqs in kw["RequestItems"].values():
            for r in reqs:
                if id(r) in left:
                    continue
                item = r.get("PutRequest", {}).get("Item") or r.get("DeleteRequest", {}).get("Key")
                self._note({"pk": item["pk"], "sk": item["sk"]}, item_size(item))
                self._charge(item["pk"]["S"], units(item_size(item)))
        return resp

    def transact_write_items(self, **kw: Any) -> Any:
        charges = []
        for op in kw["TransactItems"]:
            (_kind, body), = op.items()
            key = body.get("Key") or {"pk": body["Item"]["pk"], "sk": body["Item"]["sk"]}
            size = max(self._now_size(key), item_size(body.get("Item") or {}))
            charges.append((key["pk"]["S"], 2 * units(size)))
        try:
            return self._client.transact_write_items(**kw)
        finally:
            for pk, wcu in charges:
                self._charge(pk, wcu)


class Report(Struct):
    tasks: int
    edges: int
    completions: int
    task_shards: int
    counter_shards: int
    submit_wcu: int  # writing the run (the submit function's BatchWriteItem), not in the windows
    run_wcu: int  # every write after the submission
    wcu_per_completion: float
    peak_key: str  # the partition key with the most units in one window
    peak_key_wcu_s: int  # its units in that window: WCU/s at 1,000 completions/s
    peak_total_wcu_s: int  # the busiest window's units over all keys
    mean_total_wcu_s: float
    per_kind_peak: dict[str, int]  # task / counter / run partitions: the busiest key of each kind
    largest_item_bytes: dict[str, int]

    def lines(self) -> list[str]:
        share = 100 * self.peak_key_wcu_s / PARTITION_WCU_S
        return [
            f"run: {self.tasks:,} tasks, {self.edges:,} edges, {self.task_shards} task partitions, "
            f"{self.counter_shards} counter partitions",
            f"submission: {self.submit_wcu:,} WCU (one BatchWriteItem per 25 items)",
            f"run: {self.run_wcu:,} WCU = {self.wcu_per_completion:.2f} WCU per completion",
            f"at 1,000 completions/s: busiest partition {self.peak_key} {self.peak_key_wcu_s} WCU/s "
            f"({share:.0f}% of {PARTITION_WCU_S}); busiest by kind {self.per_kind_peak}",
            f"at 1,000 completions/s: table {self.peak_total_wcu_s:,} WCU/s in the busiest second, "
            f"{self.mean_total_wcu_s:,.0f} on average (a new on-demand table: {NEW_ON_DEMAND_WCU_S:,})",
            f"largest items (bytes): {self.largest_item_bytes}",
        ]


def layered(n: int, width: int, fan_in: int, seed: int = 1) -> Workflow:
    """n tasks in levels of `width`; each task past the first level reads the output of
    `fan_in` tasks of the level before (random, distinct)."""
    rng = random.Random(seed)
    tasks: list[Task] = []
    for i in range(n):
        level, prev = divmod(i, width)[0], max(0, (i // width - 1) * width)
        parents = [] if level == 0 else rng.sample(range(prev, prev + width), min(fan_in, width))
        tasks.append(Task(id=f"t{i:06d}", command=("true",), inputs=tuple(f"o/{p:06d}" for p in parents),
                          outputs=(f"o/{i:06d}",)))
    return Workflow(name="bench-ddb-writes", tasks=tuple(tasks))


def runner_result(run_id: str, task_id: str, now: float, outputs: int = 1) -> AttemptResult:
    """A success as the runner reports it (execute.py): times, sizes, its cache counters, the
    content hash of each of its `outputs` files and where its log is."""
    def digest(i: int) -> str:
        return hashlib.sha256(f"{task_id}/{i}".encode()).hexdigest()

    return AttemptResult(
        exit_code=0, started_at=now - 1.25, finished_at=now, duration_s=1.250113,
        bytes_in=2_048_576, bytes_out=1_048_576, peak_rss_mb=87.3,
        cache=CacheUse(hits=1, misses=1, bytes_from_origin=1_048_576, bytes_from_cache=1_000_000, memo="miss"),
        outputs={f"o/{task_id[1:]}" + (f"/part-{i:04d}.dat" if i else ""): digest(i) for i in range(outputs)},
        log_key=f"runs/{run_id}/logs/{task_id}/1.log",
    )


def measure(tasks: int = 10_000, width: int = 1000, fan_in: int = 2, task_shards: int = 32,
            counter_shards: int = 4, window: int = WINDOW, outputs: int = 1) -> Report:
    """Run a layered workflow of `tasks` tasks to the end on moto; the write units it cost,
    per partition key and per `window` completions, scaled to RATE completions/s."""
    workflow = layered(tasks, width, fan_in)
    spec = RunSpec.of(workflow)
    with mocked_aws(), tempfile.TemporaryDirectory() as tmp:
        cfg = config_for(table="bench-writes", bucket="bench-writes", task_shards=task_shards,
                         counter_shards=counter_shards)
        clients = AwsClients(cfg)
        create_table(clients, cfg.table)
        clients.s3.create_bucket(Bucket=cfg.bucket)  # where large results go (dynamodb_results.py)
        meter = WriteMeter(clients.dynamodb, cfg.table)
        clients._clients["dynamodb"] = meter
        store = DynamoStateStore(cfg, clients)
        blobs = FsBlobStore(tmp)
        run = create_run(spec, store, blobs, 1000.0)
        submit = sum(meter.by_key.values())
        meter.by_key.clear()
        meter.by_window.clear()
        co = Coordinator(store, SpecCache.from_blobs(blobs))
        done = _drive(co, store, meter, run.run_id, window, outputs)
        assert store.get_run(run.run_id).state is RunState.SUCCEEDED, store.counts(run.run_id)
    return _report(meter, tasks, spec.graph.edge_count, done, task_shards, counter_shards, submit, window)


def _drive(co: Coordinator, store: DynamoStateStore, meter: WriteMeter, run_id: str, window: int,
           outputs: int) -> int:
    queue: deque[ev.Event] = deque([ev.Start(run_id)])
    done = 0
    while queue:
        batch = [queue.popleft() for _ in range(min(EVENTS_BATCH_SIZE, len(queue)))]
        out = co.handle(batch)
        done += sum(isinstance(e, ev.TaskSucceeded) for e in batch)
        meter.window = done // window
        for ins in out:
            if isinstance(ins, ev.Schedule):
                queue.append(ins.event)
            elif isinstance(ins, ev.Launch):
                now = co.clock.now()
                if claim(store, ins.run_id, ins.task_id, ins.attempt, now, 930.0) is not None:
                    queue.append(ev.TaskSucceeded(ins.run_id, ins.task_id, ins.attempt,
                                                  runner_result(ins.run_id, ins.task_id, now, outputs)))
    return done


def _kind(pk: str) -> str:
    tail = pk.rsplit("#", 1)[-1]
    return "task" if tail.startswith("T") else "counter" if tail.startswith("C") else "run"


def _report(meter: WriteMeter, tasks: int, edges: int, done: int, tshards: int, cshards: int,
            submit: int, window: int) -> Report:
    scale = RATE / window  # a window's units -> units per second at RATE completions/s
    full = [w for w in meter.by_window if (w + 1) * window <= done] or list(meter.by_window)
    peak_key, peak = "", 0
    per_kind: dict[str, int] = {}
    totals: list[int] = []
    for w in full:
        units_of = meter.by_window[w]
        totals.append(round(scale * sum(units_of.values())))
        for pk, raw in units_of.items():
            wcu = round(scale * raw)
            per_kind[_kind(pk)] = max(per_kind.get(_kind(pk), 0), wcu)
            if wcu > peak:
                peak_key, peak = pk, wcu
    total = sum(meter.by_key.values())
    return Report(
        tasks=tasks, edges=edges, completions=done, task_shards=tshards, counter_shards=cshards,
        submit_wcu=submit, run_wcu=total, wcu_per_completion=round(total / max(1, done), 3),
        peak_key=peak_key, peak_key_wcu_s=peak, peak_total_wcu_s=max(totals, default=0),
        mean_total_wcu_s=round(sum(totals) / max(1, len(totals)), 1), per_kind_peak=per_kind,
        largest_item_bytes=dict(meter.sizes),
    )


def shares(report: Report) -> Sequence[float]:
    """The busiest partition's and the table's share of their limits at 1,000 completions/s."""
    return report.peak_key_wcu_s / PARTITION_WCU_S, report.peak_total_wcu_s / NEW_ON_DEMAND_WCU_S
