"""boto3 clients, created on first use from an injectable session.

Importing this module does not import boto3: the local runtime never pays for it, and a
Lambda function only creates the clients its handler touches (cold starts are billed).
"""

from __future__ import annotations

import threading
from typing import Any

from chalicelib.backends.aws.config import AwsConfig


class AwsClients:
    """One client per service, shared by the adapters of a process (clients are thread-safe).

    `session` is a boto3.session.Session (tests pass one with counting hooks); `overrides`
    maps a service name to a ready client (the e2e harness replaces Lambda with its own).
    """

    def __init__(self, config: AwsConfig, session: Any = None, overrides: dict[str, Any] | None = None) -> None:
        self.config = config
        self._session = session
        self._clients: dict[str, Any] = dict(overrides or {})
        self._lock = threading.Lock()

    @property
    def session(self) -> Any:
        if self._session is None:
            import boto3.session

            self._session = boto3.session.Session(region_name=self.config.region)
        return self._session

    def client(self, service: str) -> Any:
        cached = self._clients.get(service)
        if cached is not None:
            return cached
        with self._lock:
            cached = self._clients.get(service)
            if cached is None:
                from botocore.config import Config

                cached = self.session.client(
                    service, region_name=self.config.region, endpoint_url=self.config.endpoint_url,
                    config=Config(retries={"mode": "standard", "max_attempts": 5},
                                  max_pool_connections=32),
                )
                self._clients[service] = cached
        return cached

    @property
    def dynamodb(self) -> Any:
        return self.client("dynamodb")

    @property
    def s3(self) -> Any:
        return self.client("s3")

    @property
    def sqs(self) -> Any:
        return self.client("sqs")

    @property
    def lambda_(self) -> Any:
        return self.client("lambda")

    @property
    def ecs(self) -> Any:
        return self.client("ecs")


def error_code(exc: BaseException) -> str:
    """The AWS error code of a botocore ClientError ('' for anything else)."""
    response = getattr(exc, "response", None)
    if isinstance(response, dict):
        return str(response.get("Error", {}).get("Code", ""))
    return ""
