"""Emulated AWS for the tests: moto in-process, the app's resources provisioned, and a Cloud
wired to them. Shared by the contract suites, the app tests and the e2e harness."""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from chalicelib.backends.aws.components import Cloud
from chalicelib.backends.aws.config import AwsConfig
from chalicelib.backends.aws.provision import Provisioned, provision

FAKE_ENV = {
    "AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing", "AWS_SESSION_TOKEN": "testing",
    "AWS_DEFAULT_REGION": "us-east-1", "AWS_REGION": "us-east-1", "POWERTOOLS_TRACE_DISABLED": "true",
    "POWERTOOLS_METRICS_NAMESPACE": "UpdraftTest",
}


@contextmanager
def fake_credentials() -> Iterator[None]:
    """Credentials and region for moto; no real AWS account is reachable with these."""
    saved = {k: os.environ.get(k) for k in FAKE_ENV}
    os.environ.update(FAKE_ENV)
    try:
        yield
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


@contextmanager
def mocked_aws() -> Iterator[None]:
    from moto import mock_aws

    with fake_credentials(), mock_aws():
        yield


def make_cloud(
    session: Any = None, overrides: dict[str, Any] | None = None, **config: Any
) -> tuple[Cloud, Provisioned]:
    """A Cloud on freshly provisioned resources (inside mocked_aws, or against an emulator)."""
    config.setdefault("region", "us-east-1")
    cloud = Cloud.from_env(session=session, overrides=overrides, env={}, **config)
    made = provision(cloud.config, cloud.clients)
    return cloud, made


def config_for(**values: Any) -> AwsConfig:
    values.setdefault("region", "us-east-1")
    return AwsConfig.from_env({}, **values)


class AtomicRequests:
    """A client proxy applying one request at a time.

    DynamoDB applies each request to an item atomically; moto, called from several threads,
    does not (two concurrent UpdateItem calls can lose one update). Serialising requests
    restores exactly that per-request guarantee and nothing more, so concurrency tests still
    exercise every interleaving of an adapter's multi-request logic.
    """

    def __init__(self, client: Any) -> None:
        import threading

        self._client = client
        self._lock = threading.Lock()

    def __getattr__(self, name: str) -> Any:
        attr = getattr(self._client, name)
        if not callable(attr) or name in ("get_paginator", "get_waiter"):
            return attr

        def call(*args: Any, **kwargs: Any) -> Any:
            with self._lock:
                return attr(*args, **kwargs)

        return call
