"""What only the DynamoDB adapter promises of its pages: a page of n tasks reads ~n items of
the run's partitions, not the whole run, and a sparse filter ends a page at its read budget."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from chalicelib.backends.aws import dynamodb_pages as pages
from chalicelib.backends.aws import dynamodb_state as ds
from chalicelib.backends.aws.clients import AwsClients
from chalicelib.engine.records import RunRecord, TaskRecord
from chalicelib.engine.states import RunState, TaskState
from tests.contract.awskit import config_for, mocked_aws

N = 1200
SHARDS = 32


class ReadCounter:
    """A DynamoDB client that adds up the items its Queries looked at (ScannedCount)."""

    def __init__(self, client: Any) -> None:
        self._client, self.scanned, self.queries = client, 0, 0

    def __getattr__(self, name: str) -> Any:
        return getattr(self._client, name)

    def query(self, **kwargs: Any) -> dict[str, Any]:
        resp = dict(self._client.query(**kwargs))
        self.queries += 1
        self.scanned += int(resp.get("ScannedCount", len(resp.get("Items", []))))
        return resp


@pytest.fixture
def aws() -> Iterator[None]:
    with mocked_aws():
        yield


def counted(n: int, shards: int, failed_every: int = 500) -> tuple[ds.DynamoStateStore, ReadCounter]:
    """A run of n READY tasks (every `failed_every`-th FAILED) in `shards` partitions."""
    cfg = config_for(table=f"pages{shards}", task_shards=shards, counter_shards=4)
    clients = AwsClients(cfg)
    ds.create_table(clients, cfg.table)
    store = ds.DynamoStateStore(cfg, clients)
    tasks = [TaskRecord("big", f"task-{i:06d}", TaskState.FAILED if i % failed_every == 7 else TaskState.READY,
                        1, "function", 0) for i in range(n)]
    store.create_run(RunRecord("big", "big", RunState.RUNNING, 1.0, n, "runs/big/workflow.json"), tasks)
    counter = ReadCounter(clients.dynamodb)
    clients._clients["dynamodb"] = counter
    return store, counter


@pytest.mark.usefixtures("aws")
def test_a_limited_list_reads_only_what_the_page_needs() -> None:
    store, counter = counted(N, SHARDS)
    first = store.list_tasks("big", [TaskState.READY], limit=257)
    assert len(first) == 257
    assert [t.task_id for t in first] == sorted(t.task_id for t in first)  # task id order
    assert counter.scanned < 257 + 8 * SHARDS, counter.scanned  # a few past the page per shard, not 2,000
    counter.scanned = 0
    store.list_tasks("big", limit=10)
    assert counter.scanned <= 10 + pages.FIRST_READ_MIN * SHARDS * 2


@pytest.mark.usefixtures("aws")
def test_a_sparse_filter_ends_a_page_at_its_read_budget_and_goes_on() -> None:
    n, shards, budget = 600, 6, 100
    store, counter = counted(n, shards, failed_every=150)
    found: list[str] = []
    after: str | None = None
    hops = 0
    while True:
        counter.scanned = 0
        page = pages.page_merge(store._shard_reader("big", [TaskState.FAILED]), shards, 10, after, budget=budget)
        hops += 1
        assert counter.scanned <= 2 * budget + 2 * pages.FIRST_READ_MIN * shards  # about the budget, not the run
        found.extend(t.task_id for t in page.tasks)
        if page.after is None:
            break
        after = page.after
    assert found == [f"task-{i:06d}" for i in range(n) if i % 150 == 7]
    assert hops > 2  # the budget split the search into several pages
