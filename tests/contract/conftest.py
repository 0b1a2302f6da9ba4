"""Each port's suite runs once per adapter: local and AWS (moto)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from chalicelib.backends.aws.clients import AwsClients
from chalicelib.backends.aws.dynamodb_state import DynamoStateStore, create_table
from chalicelib.backends.aws.provision import MAX_RECEIVES
from chalicelib.backends.aws.s3_blobs import S3BlobStore
from chalicelib.backends.aws.sqs_queues import SqsQueue
from chalicelib.backends.local.fs_blobs import FsBlobStore
from chalicelib.backends.local.sqlite_state import SqliteStateStore
from tests.contract.awskit import AtomicRequests, config_for, mocked_aws
from tests.support.memory_queue import MemoryQueue


@pytest.fixture
def aws() -> Iterator[None]:
    with mocked_aws():
        yield


@pytest.fixture(params=["sqlite", "dynamodb"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Any]:
    if request.param == "sqlite":
        sqlite = SqliteStateStore(str(tmp_path / "state.db"))
        yield sqlite
        sqlite.close()
        return
    with mocked_aws():
        cfg = config_for(table="contract", task_shards=4, counter_shards=3)
        clients = AwsClients(cfg)
        clients = AwsClients(cfg, overrides={"dynamodb": AtomicRequests(clients.dynamodb)})
        create_table(clients, cfg.table)
        yield DynamoStateStore(cfg, clients)


@pytest.fixture(params=["fs", "s3"])
def blobs(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Any]:
    if request.param == "fs":
        yield FsBlobStore(str(tmp_path / "blobs"))
        return
    with mocked_aws():
        cfg = config_for(bucket="contract-bucket", blob_prefix="pre/", multipart_threshold_mb=5)
        clients = AwsClients(cfg)
        clients.s3.create_bucket(Bucket=cfg.bucket)
        yield S3BlobStore(cfg, clients)


class QueuePair:
    """A queue and its dead-letter queue, with redrive after `max_receives` receives."""

    def __init__(self, queue: Any, dead: Any, max_receives: int) -> None:
        self.queue = queue
        self.dead = dead
        self.max_receives = max_receives


@pytest.fixture(params=["memory", "sqs"])
def queues(request: pytest.FixtureRequest) -> Iterator[QueuePair]:
    max_receives = 2
    if request.param == "memory":
        dead = MemoryQueue(visibility_s=1)
        yield QueuePair(MemoryQueue(visibility_s=1, max_receives=max_receives, dead_letter=dead), dead, max_receives)
        return
    assert max_receives < MAX_RECEIVES  # the deployed value is larger; the test uses a small one
    with mocked_aws():
        import json

        clients = AwsClients(config_for())
        sqs = clients.sqs
        dlq_url = sqs.create_queue(QueueName="contract-dlq")["QueueUrl"]
        arn = sqs.get_queue_attributes(QueueUrl=dlq_url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
        url = sqs.create_queue(QueueName="contract", Attributes={
            "VisibilityTimeout": "1",
            "RedrivePolicy": json.dumps({"deadLetterTargetArn": arn, "maxReceiveCount": str(max_receives)}),
        })["QueueUrl"]
        yield QueuePair(SqsQueue(url, clients), SqsQueue("contract-dlq", clients), max_receives)
