"""A large task result goes to S3 and the item keeps a slim copy (dynamodb_results.py)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from chalicelib.attempt import AttemptResult, decode_result
from chalicelib.backends.aws import dynamodb_state as ds
from chalicelib.backends.aws.clients import AwsClients
from chalicelib.backends.aws.dynamodb_results import RESULT_INLINE_BYTES
from chalicelib.engine.records import RunRecord, TaskRecord
from chalicelib.engine.states import RunState, TaskState
from tests.contract.awskit import config_for, mocked_aws
from tests.e2e.test_cloud_harness import item_size


@pytest.fixture
def store() -> Iterator[ds.DynamoStateStore]:
    with mocked_aws():
        cfg = config_for(table="results", bucket="results-bucket", blob_prefix="pre/", task_shards=4)
        clients = AwsClients(cfg)
        ds.create_table(clients, cfg.table)
        clients.s3.create_bucket(Bucket=cfg.bucket)
        store = ds.DynamoStateStore(cfg, clients)
        store.create_run(RunRecord("r", "r", RunState.RUNNING, 1.0, 1, "k"),
                         [TaskRecord("r", "a", TaskState.RUNNING, 2, "function", 0)])
        yield store


def test_a_large_result_is_spilled_and_the_item_keeps_a_slim_copy(store: ds.DynamoStateStore) -> None:
    result = AttemptResult(exit_code=0, duration_s=1.5, log_key="runs/r/logs/a/2.log",
                           outputs={f"out/part-{i:04d}.dat": "f" * 64 for i in range(300)}, log_tail="z" * 10_000)
    done = store.update_task("r", "a", [TaskState.RUNNING], 2, {"state": TaskState.SUCCEEDED, "result": result})
    assert done == store.get_task("r", "a")  # the record returned is the one a read gives
    kept = done.result
    assert kept is not None and kept.result_key is not None
    assert (kept.exit_code, kept.duration_s, kept.log_key) == (0, 1.5, "runs/r/logs/a/2.log")
    assert kept.outputs == {} and kept.outputs_omitted == 300 and kept.log_tail == "z" * 1024
    item = store._get_task_item("r", "a")
    assert item is not None and item_size(item) < RESULT_INLINE_BYTES + 1024  # a few write units, not 28
    body = store.clients.s3.get_object(Bucket="results-bucket", Key="pre/" + kept.result_key)["Body"].read()
    assert decode_result(body) == result  # the whole of it


def test_a_small_result_stays_in_the_item(store: ds.DynamoStateStore) -> None:
    result = AttemptResult(exit_code=0, outputs={"o.txt": "f" * 64})
    done = store.update_task("r", "a", [TaskState.RUNNING], 2, {"state": TaskState.SUCCEEDED, "result": result})
    assert done.result == result and store.get_task("r", "a").result == result
