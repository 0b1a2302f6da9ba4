"""Fault injection into boto3 clients: throttling and transient errors, answered before the
request leaves the client.

A botocore `before-send` hook returns an error response instead of sending the request; the
client then behaves exactly as it would on a real error: the retry handler configured in
chalicelib/backends/aws/clients.py decides whether to retry and how long to back off. The
attempt number of each request comes from the `amz-sdk-request: attempt=N; max=M` header
botocore adds, so a fault can hit only the first attempts of a request, or all of them.

botocore sleeps between retries in `botocore.endpoint` (`time.sleep(delay)`): `fake_sleeps`
records those delays instead of sleeping, so the tests see the backoff without waiting it out.

Use against a moto *server* (the emulated cloud), not moto's in-process mock: the mock answers
from its own `before-send` hook, which would apply the write our fault pretends was refused.
"""

from __future__ import annotations

import json
import random
import re
import threading
import types
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import botocore.endpoint
from botocore.awsrequest import AWSResponse


@dataclass(frozen=True)
class Fault:
    """An error response as the service sends it."""

    code: str
    status: int
    protocol: str  # "json" (DynamoDB, SQS), "rest-json" (Lambda), "rest-xml" (S3)
    message: str = "injected by tests/faults/inject.py"

    def response(self, url: str) -> AWSResponse:
        headers: dict[str, str] = {}
        if self.protocol == "json":
            body = json.dumps({"__type": f"com.amazonaws.fault#{self.code}", "message": self.message}).encode()
            headers = {"Content-Type": "application/x-amz-json-1.0", "x-amzn-query-error": f"{self.code};Sender"}
        elif self.protocol == "rest-json":
            body = json.dumps({"Type": "User", "message": self.message}).encode()
            headers = {"Content-Type": "application/json", "x-amzn-ErrorType": f"{self.code}:"}
        else:
            body = (f"<?xml version='1.0' encoding='UTF-8'?><Error><Code>{self.code}</Code>"
                    f"<Message>{self.message}</Message></Error>").encode()
            headers = {"Content-Type": "application/xml"}
        return AWSResponse(url, self.status, headers, _Raw(body))


class _Raw:
    def __init__(self, data: bytes) -> None:
        self.data = data

    def stream(self, **_: Any) -> Iterator[bytes]:
        yield self.data


# The throttling errors of each service, as they come over the wire.
DYNAMODB_THROUGHPUT = Fault("ProvisionedThroughputExceededException", 400, "json")
DYNAMODB_THROTTLING = Fault("ThrottlingException", 400, "json")
SQS_THROTTLING = Fault("ThrottlingException", 400, "json")
S3_SLOWDOWN = Fault("SlowDown", 503, "rest-xml")
LAMBDA_TOO_MANY = Fault("TooManyRequestsException", 429, "rest-json")
SERVICE_UNAVAILABLE = Fault("ServiceUnavailable", 503, "json")

_ATTEMPT = re.compile(r"attempt=(\d+)")


def attempt_of(request: Any) -> int:
    header = request.headers.get("amz-sdk-request", b"")
    match = _ATTEMPT.search(header.decode() if isinstance(header, bytes) else str(header))
    return int(match.group(1)) if match else 1


@dataclass
class Injector:
    """Answers the requests `decide(operation, attempt)` picks with `fault`, on one client."""

    fault: Fault
    decide: Callable[[str, int], bool]
    injected: Counter[str] = field(default_factory=Counter)
    seen: Counter[str] = field(default_factory=Counter)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def __call__(self, request: Any, event_name: str = "", **_: Any) -> AWSResponse | None:
        operation = event_name.rsplit(".", 1)[-1]
        with self._lock:
            self.seen[operation] += 1
            hit = self.decide(operation, attempt_of(request))
            if hit:
                self.injected[operation] += 1
        return self.fault.response(request.url) if hit else None


def inject(client: Any, fault: Fault, decide: Callable[[str, int], bool], operation: str | None = None) -> Injector:
    """Register an injector on `client` (all its operations, or one); returns it."""
    injector = Injector(fault, decide)
    service = client.meta.service_model.service_id.hyphenize()
    event = f"before-send.{service}" + (f".{operation}" if operation else "")
    client.meta.events.register_first(event, injector, unique_id=f"fault-{id(injector)}")
    return injector


class AppliedThenLost:
    """The ambiguous failure: the request reaches the service and is applied, but its response
    is lost (a timeout, a dropped connection) and the client sees a 500 - so it retries a write
    that already happened. Hits the requests `decide` picks whose body contains `marker`."""

    def __init__(self, decide: Callable[[str, int], bool], marker: bytes = b"") -> None:
        self.decide, self.marker = decide, marker
        self.applied: list[bytes] = []

    def __call__(self, request: Any, event_name: str = "", **_: Any) -> AWSResponse | None:
        body = request.body if isinstance(request.body, bytes) else str(request.body or "").encode()
        if self.marker not in body or not self.decide(event_name.rsplit(".", 1)[-1], attempt_of(request)):
            return None
        import urllib.request

        forwarded = urllib.request.Request(request.url, data=body, method=request.method,
                                           headers={k: v for k, v in request.headers.items()})
        with urllib.request.urlopen(forwarded, timeout=10) as resp:  # the local moto server
            resp.read()
        self.applied.append(body)
        return SERVICE_UNAVAILABLE.response(request.url)


def remove(client: Any, injector: Injector, operation: str | None = None) -> None:
    service = client.meta.service_model.service_id.hyphenize()
    event = f"before-send.{service}" + (f".{operation}" if operation else "")
    client.meta.events.unregister(event, injector, unique_id=f"fault-{id(injector)}")


def first_attempts(n: int, operations: set[str] | None = None) -> Callable[[str, int], bool]:
    """Fail the first `n` attempts of every request (of `operations`, or all)."""
    return lambda op, attempt: (operations is None or op in operations) and attempt <= n


def always(operations: set[str] | None = None) -> Callable[[str, int], bool]:
    return lambda op, attempt: operations is None or op in operations


def at_rate(rate: float, seed: int, max_per_request: int) -> Callable[[str, int], bool]:
    """Fail requests at random, at most `max_per_request` attempts of one request."""
    rng = random.Random(seed)
    return lambda op, attempt: attempt <= max_per_request and rng.random() < rate


def for_next(n: int, operations: set[str]) -> Callable[[str, int], bool]:
    """Fail the next `n` requests of `operations`, whatever their attempt: a short outage."""
    left = [n]

    def decide(op: str, attempt: int) -> bool:
        if op not in operations or left[0] <= 0:
            return False
        left[0] -= 1
        return True

    return decide


@contextmanager
def fake_sleeps() -> Iterator[list[float]]:
    """botocore's retry delays, recorded instead of slept."""
    delays: list[float] = []
    real = botocore.endpoint.time
    botocore.endpoint.time = types.SimpleNamespace(sleep=delays.append)
    try:
        yield delays
    finally:
        botocore.endpoint.time = real
