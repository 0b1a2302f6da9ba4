"""SQS queues: the MessageQueue port on SQS, and the coordinator's event sink on top of it.

Two queues, each with a dead-letter queue (redrive after a few receives):
- events: completions and timers for the coordinator (its SQS trigger, batches of 10,
  partial batch failure reporting);
- container tasks: one message per container-placed attempt, long-polled by Fargate
  workers, whose visibility extension is the heartbeat of the message.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Sequence
from typing import Any

from chalicelib.backends.aws.clients import AwsClients, error_code
from chalicelib.backends.aws.config import SQS_MAX_BATCH, SQS_MAX_DELAY_S, SQS_MAX_VISIBILITY_S, SQS_MAX_WAIT_S
from chalicelib.backends.aws.messages import deferred_body, event_body
from chalicelib.engine.events import Event
from chalicelib.engine.ports import QueueMessage
from chalicelib.errors import UpdraftError


class QueueSendError(UpdraftError):
    """SQS refused some messages even after a retry."""


# SQS's answers for a receipt whose message this holder no longer has (deleted, or received
# again by another): as on the memory queue, acting on it is a no-op, not an error
_GONE = frozenset({"ReceiptHandleIsInvalid", "MessageNotInflight", "AWS.SimpleQueueService.MessageNotInflight"})


def _unless_gone(call: Callable[..., object]) -> None:
    try:
        call()
    except Exception as exc:
        if error_code(exc) not in _GONE:
            raise


class SqsQueue:
    """MessageQueue on one SQS queue, named by URL or by name (resolved once, lazily)."""

    def __init__(self, queue: str, clients: AwsClients) -> None:
        self._queue = queue
        self.clients = clients
        self._url: str | None = queue if queue.startswith(("https://", "http://")) else None
        self._lock = threading.Lock()

    @property
    def url(self) -> str:
        if self._url is None:
            with self._lock:
                if self._url is None:
                    self._url = str(self.clients.sqs.get_queue_url(QueueName=self._queue)["QueueUrl"])
        return self._url

    def send(self, bodies: Sequence[str], delay_s: float = 0.0) -> None:
        delay = int(min(SQS_MAX_DELAY_S, max(0.0, delay_s)) + 0.999)
        for start in range(0, len(bodies), SQS_MAX_BATCH):
            entries = [{"Id": str(i), "MessageBody": body, "DelaySeconds": delay}
                       for i, body in enumerate(bodies[start:start + SQS_MAX_BATCH])]
            for attempt in range(2):
                if len(entries) == 1:  # one message: SendMessage is the cheaper call to read
                    e = entries[0]
                    self.clients.sqs.send_message(QueueUrl=self.url, MessageBody=e["MessageBody"],
                                                  DelaySeconds=e["DelaySeconds"])
                    break
                resp = self.clients.sqs.send_message_batch(QueueUrl=self.url, Entries=entries)
                failed = {f["Id"] for f in resp.get("Failed", [])}
                entries = [e for e in entries if e["Id"] in failed]
                if not entries:
                    break
                if attempt == 1:
                    raise QueueSendError(f"SQS refused {len(entries)} message(s) for {self.url}: {resp['Failed']}")
                time.sleep(0.1)

    def receive(
        self, max_messages: int = 1, wait_s: float = 0.0, visibility_s: float | None = None
    ) -> list[QueueMessage]:
        if max_messages < 1:  # SQS would give one anyway
            return []
        kwargs: dict[str, Any] = {
            "QueueUrl": self.url, "MaxNumberOfMessages": max(1, min(SQS_MAX_BATCH, max_messages)),
            "WaitTimeSeconds": int(min(SQS_MAX_WAIT_S, max(0.0, wait_s))),
            "MessageSystemAttributeNames": ["ApproximateReceiveCount"],
        }
        if visibility_s is not None:
            kwargs["VisibilityTimeout"] = _visibility(visibility_s)
        resp = self.clients.sqs.receive_message(**kwargs)
        return [
            QueueMessage(m["Body"], m["ReceiptHandle"],
                         int(m.get("Attributes", {}).get("ApproximateReceiveCount", 1)), m.get("MessageId", ""))
            for m in resp.get("Messages", [])
        ]

    def delete(self, messages: Sequence[QueueMessage]) -> None:
        for start in range(0, len(messages), SQS_MAX_BATCH):
            chunk = messages[start:start + SQS_MAX_BATCH]
            if len(chunk) == 1:
                _unless_gone(lambda r=chunk[0].receipt: self.clients.sqs.delete_message(QueueUrl=self.url,
                                                                                      ReceiptHandle=r))
                continue
            self.clients.sqs.delete_message_batch(QueueUrl=self.url, Entries=[
                {"Id": str(i), "ReceiptHandle": m.receipt} for i, m in enumerate(chunk)])

    def extend(self, message: QueueMessage, visibility_s: float) -> None:
        _unless_gone(lambda: self.clients.sqs.change_message_visibility(
            QueueUrl=self.url, ReceiptHandle=message.receipt, VisibilityTimeout=_visibility(visibility_s)))

    def release(self, message: QueueMessage) -> None:
        _unless_gone(lambda: self.clients.sqs.change_message_visibility(
            QueueUrl=self.url, ReceiptHandle=message.receipt, VisibilityTimeout=0))

    def backlog(self) -> int:
        names = ["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible",
                 "ApproximateNumberOfMessagesDelayed"]
        attrs = self.clients.sqs.get_queue_attributes(QueueUrl=self.url, AttributeNames=names)["Attributes"]
        return sum(int(attrs.get(n, 0)) for n in names)


def _visibility(seconds: float) -> int:
    return int(min(SQS_MAX_VISIBILITY_S, max(0.0, seconds)) + 0.999)


class QueueEventSink:
    """EventSink on a MessageQueue. Delays longer than SQS allows (900 s) travel as a
    'deferred' envelope that the coordinator's shell re-sends until it is due."""

    def __init__(self, queue: Any, clock: Callable[[], float] = time.time) -> None:
        self.queue = queue
        self.clock = clock

    def send(self, events: Sequence[Event], delay_s: float = 0.0) -> None:
        if not events:
            return
        if delay_s <= SQS_MAX_DELAY_S:
            self.queue.send([event_body(e) for e in events], delay_s)
            return
        due = self.clock() + delay_s
        self.queue.send([deferred_body(e, due) for e in events], SQS_MAX_DELAY_S)
