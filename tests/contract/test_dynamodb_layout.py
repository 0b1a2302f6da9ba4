"""What only the DynamoDB adapter has to promise: item sizes, key spread, batch-write retries."""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterator
from typing import Any

import pytest

from chalicelib.attempt import AttemptResult, decode_result
from chalicelib.backends.aws import dynamodb_state as ds
from chalicelib.backends.aws.clients import AwsClients
from chalicelib.engine.records import RunRecord, TaskRecord
from chalicelib.engine.states import RunState, TaskState
from tests.contract.awskit import config_for, mocked_aws
from tests.e2e.test_cloud_harness import item_size


class Unprocessing:
    """A DynamoDB client whose BatchWriteItem leaves items unprocessed the first `times` calls."""

    def __init__(self, client: Any, times: int) -> None:
        self._client, self.times, self.calls = client, times, 0

    def __getattr__(self, name: str) -> Any:
        return getattr(self._client, name)

    def batch_write_item(self, RequestItems: dict[str, Any]) -> dict[str, Any]:
        self.calls += 1
        if self.times > 0:
            self.times -= 1
            (table, reqs), = RequestItems.items()
            half = len(reqs) // 2 or 1
            self._client.batch_write_item(RequestItems={table: reqs[:-half]}) if reqs[:-half] else None
            return {"UnprocessedItems": {table: reqs[-half:]}}
        return dict(self._client.batch_write_item(RequestItems=RequestItems))


@pytest.fixture
def aws_store() -> Iterator[ds.DynamoStateStore]:
    with mocked_aws():
        cfg = config_for(table="layout", task_shards=32, counter_shards=4)
        clients = AwsClients(cfg)
        ds.create_table(clients, cfg.table)
        yield ds.DynamoStateStore(cfg, clients)


def make(store: ds.DynamoStateStore, n: int, run_id: str = "big") -> None:
    tasks = [TaskRecord(run_id, f"task-{i:06d}", TaskState.READY if i % 3 == 0 else TaskState.WAITING, 1,
                        "function", 0 if i % 3 == 0 else 1) for i in range(n)]
    store.create_run(RunRecord(run_id, "big", RunState.RUNNING, 1.0, n, "runs/big/workflow.json"), tasks)


def test_a_large_run_is_written_in_parallel_batches_and_spread_over_partitions(aws_store: ds.DynamoStateStore) -> None:
    make(aws_store, 640)
    assert aws_store.counts("big") == {"READY": 214, "WAITING": 426}
    items = aws_store._task_items("big", None)
    assert len(items) == 640
    per_partition = Counter(i["pk"]["S"] for i in items)
    assert len(per_partition) == 32
    assert max(per_partition.values()) < 2 * 640 / 32  # no hot partition
    assert len(aws_store.list_tasks("big", [TaskState.READY])) == 214


def test_unprocessed_items_are_retried(aws_store: ds.DynamoStateStore, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(ds.time, "sleep", lambda _s: None)
    flaky = Unprocessing(aws_store.clients.dynamodb, times=3)
    aws_store.clients._clients["dynamodb"] = flaky
    make(aws_store, 60)
    assert flaky.calls >= 3 + 3  # every chunk's leftovers went again
    assert len(aws_store.list_tasks("big")) == 60


def test_persistent_throttling_is_an_error_not_a_silent_loss(aws_store: ds.DynamoStateStore,
                                                             monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(ds.time, "sleep", lambda _s: None)
    aws_store.clients._clients["dynamodb"] = Unprocessing(aws_store.clients.dynamodb, times=10_000)
    with pytest.raises(ds.StoreThrottledError, match="unprocessed"):
        make(aws_store, 30)
    with pytest.raises(Exception):  # noqa: B017 - the run item (the commit point) was never written
        aws_store.get_run("big")


def test_items_stay_small_whatever_the_task_carries(aws_store: ds.DynamoStateStore) -> None:
    parents = [f"{'p' * 190}{i:04d}" for i in range(ds.INLINE_FANIN_MAX)]
    child = "c" * 200
    tasks = [TaskRecord("r", p, TaskState.READY, 1, "function", 0) for p in parents]
    tasks.append(TaskRecord("r", child, TaskState.WAITING, 1, "function", len(parents)))
    aws_store.create_run(RunRecord("r", "r", RunState.RUNNING, 1.0, len(tasks), "k"), tasks)
    for p in parents:
        aws_store.complete_parent("r", p, [child])
    failed = AttemptResult(exit_code=1, log_tail="x" * 4096 + "\n" * 100, log_key="runs/r/logs/c.1.log",
                           started_at=1.0, finished_at=2.0, duration_s=1.0, bytes_in=10, bytes_out=0)
    aws_store.update_task("r", child, [TaskState.READY], 1, {"state": TaskState.FAILED, "result": failed})
    item = aws_store._get_task_item("r", child)
    assert item is not None
    assert item_size(item) < 6 * 1024  # 64 parents counted and a 4 KB log tail
    huge = AttemptResult(exit_code=1, log_tail="y" * 500_000, outputs={f"f{i}" + "f" * 100: "h" for i in range(20)})
    rec = aws_store.update_task("r", child, [TaskState.FAILED], 1, {"result": huge})
    item = aws_store._get_task_item("r", child)
    assert item is not None and item_size(item) < ds.RESULT_MAX_BYTES + 2048
    stored = json.loads(item["res"]["S"])
    assert stored["result_truncated"] is True and stored["log_tail"].endswith("y" * 100)
    # the record returned is the one a read gives (the contract tests compare them), capped too
    assert rec.result == decode_result(item["res"]["S"]) == aws_store.get_task("r", child).result


def test_a_wide_fan_in_keeps_the_child_item_small(aws_store: ds.DynamoStateStore) -> None:
    parents = [f"p{i}" for i in range(ds.INLINE_FANIN_MAX + 16)]  # edge items, not a growing set
    tasks = [TaskRecord("w", p, TaskState.READY, 1, "function", 0) for p in parents]
    tasks.append(TaskRecord("w", "merge", TaskState.WAITING, 1, "function", len(parents)))
    aws_store.create_run(RunRecord("w", "w", RunState.RUNNING, 1.0, len(tasks), "k"), tasks)
    for p in parents:
        aws_store.complete_parent("w", p, ["merge"])
    item = aws_store._get_task_item("w", "merge")
    assert item is not None and item_size(item) < 256 and "dp" not in item
    assert aws_store.get_task("w", "merge").state is TaskState.READY


def test_resume_after_a_counter_drift_counts_exactly_again(aws_store: ds.DynamoStateStore) -> None:
    tasks = [TaskRecord("d", t, TaskState.READY, 1, "function", 0) for t in ("a", "b")]
    aws_store.create_run(RunRecord("d", "d", RunState.RUNNING, 1.0, 2, "k"), tasks)
    aws_store.update_task("d", "a", [TaskState.READY], 1, {"state": TaskState.SUCCEEDED})
    aws_store.update_task("d", "b", [TaskState.READY], 1, {"state": TaskState.FAILED})
    aws_store._count("d", TaskState.SUCCEEDED, TaskState.READY)  # a crashed coordinator's lost write
    aws_store.flush()
    assert aws_store.counts("d") == {"READY": 1, "FAILED": 1}
    aws_store.finish_recounted("d", RunState.FAILED, aws_store.recount("d"), 5.0)
    assert aws_store.counts("d") == {"SUCCEEDED": 1, "FAILED": 1}
    with aws_store.batch():  # what resume_run does
        aws_store.reset_task("d", "b", TaskState.READY, 2, [], 0, 2)
        aws_store.update_run("d", list(RunState), {"state": RunState.RUNNING, "finished_at": None})
    assert aws_store.counts("d") == {"SUCCEEDED": 1, "READY": 1}
    aws_store.update_task("d", "b", [TaskState.READY], 2, {"state": TaskState.DISPATCHED})
    assert aws_store.counts("d") == {"SUCCEEDED": 1, "DISPATCHED": 1}


def test_a_resume_that_loses_its_condition_leaves_the_counters_alone(aws_store: ds.DynamoStateStore) -> None:
    from chalicelib.errors import StateConflictError

    make(aws_store, 6, "r1")
    other = ds.DynamoStateStore(aws_store.config, aws_store.clients)  # the API, beside a coordinator
    with aws_store.batch():  # a coordinator step in flight: its counter deltas not written yet
        aws_store.update_task("r1", "task-000000", [TaskState.READY], 1, {"state": TaskState.DISPATCHED})
        with pytest.raises(StateConflictError):  # the run is RUNNING, not CANCELLED
            other.update_run("r1", [RunState.CANCELLED], {"state": RunState.RUNNING})
    assert aws_store.counts("r1") == aws_store.recount("r1") == {"DISPATCHED": 1, "READY": 1, "WAITING": 4}
