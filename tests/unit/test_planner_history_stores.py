"""One suite for every HistoryStore: the JSON-lines file and DynamoDB (moto)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from chalicelib.planner.history import HistoryStore, JsonlHistoryStore, Sample
from chalicelib.planner.perfmodel import PerfModel


@pytest.fixture(params=["jsonl", "dynamodb"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[HistoryStore]:
    if request.param == "jsonl":
        yield JsonlHistoryStore(str(tmp_path / "history.jsonl"), keep_per_type=3)
        return
    pytest.importorskip("moto")
    from chalicelib.planner.history_dynamodb import DynamoDbHistoryStore
    from tests.contract.awskit import make_cloud, mocked_aws

    with mocked_aws():
        cloud, _ = make_cloud()
        yield DynamoDbHistoryStore(cloud.clients.dynamodb, cloud.config.table, keep_per_type=3)


def test_samples_come_back_newest_per_type_oldest_first(store: HistoryStore) -> None:
    assert store.samples() == []
    store.add([Sample("mProject", "local", duration_s=float(i), memory_mb=128, at=100.0 + i) for i in range(5)])
    store.add([Sample("mAdd", "function", duration_s=9.0, memory_mb=1769, vcpus=1.0, bytes_in=7, bytes_out=8,
                      peak_rss_mb=75.5, at=50.0),
               Sample("mAdd", "function", duration_s=1.0, memory_mb=128, vcpus=0.07, ok=False, reason="OOM",
                      at=60.0)])
    got = store.samples()
    assert [s.duration_s for s in got if s.task_type == "mProject"] == [2.0, 3.0, 4.0]
    assert [s.at for s in got] == sorted(s.at for s in got)
    assert store.samples(["mAdd"]) == [
        Sample("mAdd", "function", duration_s=9.0, memory_mb=1769, vcpus=1.0, bytes_in=7, bytes_out=8,
               peak_rss_mb=75.5, at=50.0),
        Sample("mAdd", "function", duration_s=1.0, memory_mb=128, vcpus=0.07, ok=False, reason="OOM", at=60.0)]
    assert store.samples(["nothing"]) == []
    perf = PerfModel.learn(store.samples())
    assert perf.type_model("mAdd") is not None and perf.type_model("mAdd").min_memory_mb == 128  # type: ignore[union-attr]


def test_many_samples_in_one_add(store: HistoryStore) -> None:
    store.add([Sample(f"t{i % 4}", "local", duration_s=1.0, memory_mb=128, at=float(i)) for i in range(60)])
    assert len(store.samples()) == 4 * 3
