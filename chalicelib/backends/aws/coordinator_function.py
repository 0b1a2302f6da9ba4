"""The coordinator function: one SQS batch of events in, instructions applied, failures out.

1. Every record is decoded by a Powertools BatchProcessor; a record that cannot be read is
   reported as a batch item failure (SQS redelivers it, then dead-letters it).
2. Timers not yet due ('deferred' bodies) hop back onto the queue.
3. All events go to Coordinator.handle in ONE call: one counter flush and one counts read
   per batch, not per event. If that raises, each event is retried alone, and only the ones
   that still fail are reported, so one poisoned event cannot hold back the others.
Everything the coordinator does is idempotent, so a redelivered batch is harmless.

Partial failures only work when the event source mapping has FunctionResponseTypes
[ReportBatchItemFailures] (Chalice cannot set it; see docs/aws.md): without it Lambda deletes
the whole batch whatever we return. UPDRAFT_PARTIAL_BATCH=0 makes any failure raise instead.
"""

from __future__ import annotations

import logging
from typing import Any

from chalicelib.backends.aws.components import Cloud
from chalicelib.backends.aws.messages import Decoded, decode
from chalicelib.engine.events import Event
from chalicelib.errors import UpdraftError

log = logging.getLogger("updraft.coordinator")

DUE_SLACK_S = 1.0


def handle_batch(raw_event: dict[str, Any], cloud: Cloud) -> dict[str, Any]:
    from aws_lambda_powertools.utilities.batch import BatchProcessor, EventType

    decoded: list[tuple[str, Decoded]] = []

    def parse(record: Any) -> None:
        decoded.append((record.message_id, decode(record.body)))

    processor = BatchProcessor(event_type=EventType.SQS, raise_on_entire_batch_failure=False)
    with processor(records=raw_event.get("Records", []), handler=parse):
        processor.process()
    failures: list[str] = [str(f["itemIdentifier"]) for f in processor.response()["batchItemFailures"]]
    now = cloud.clock()
    events: list[tuple[str, Event]] = []
    for message_id, item in decoded:
        if item.event is None:
            continue
        if item.due is not None and item.due > now + DUE_SLACK_S:
            try:
                cloud.sink.send([item.event], item.due - now)
            except Exception:
                log.exception("could not re-defer a timer")
                failures.append(message_id)
            continue
        events.append((message_id, item.event))
    failures.extend(run_coordinator(events, cloud))
    if failures and not cloud.config.partial_batch:
        raise BatchFailedError(f"{len(failures)} of {len(decoded)} events failed; the batch is redelivered")
    return {"batchItemFailures": [{"itemIdentifier": m} for m in dict.fromkeys(failures)]}


class BatchFailedError(UpdraftError):
    """Some events failed and partial batch responses are off: SQS redelivers the batch."""


def run_coordinator(events: list[tuple[str, Event]], cloud: Cloud) -> list[str]:
    """Handle the events together; on error, one by one. Returns the ids that failed."""
    if not events:
        return []
    try:
        cloud.shell.apply(cloud.coordinator.handle([e for _, e in events]))
        return []
    except Exception:
        log.exception("batch of %d events failed; retrying them one by one", len(events))
    failed: list[str] = []
    for message_id, event in events:
        try:
            cloud.shell.apply(cloud.coordinator.handle([event]))
        except Exception:
            log.exception("event failed: %s", event.kind, extra={"run_id": event.run_id,
                                                                 "task_id": getattr(event, "task_id", None)})
            failed.append(message_id)
    return failed
