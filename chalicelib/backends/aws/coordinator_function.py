"""The coordinator function: one SQS batch of events in, instructions applied, failures out.

1. Every record is decoded by a Powertools BatchProcessor; a record that cannot be read is
   reported as a batch item failure (SQS redelivers it, then dead-letters it).
2. Timers not yet due ('deferred' bodies) hop back onto the queue.
3. All events go to Coordinator.handle in ONE call: one counter flush and one counts read
   per batch, not per event. If that raises, each event is retried alone, and only the ones
   that still fail are reported, so one poisoned event cannot hold back the others.
Everything the coordinator does is idempotent, so a redelivered batch is harmless.
4. Poison: a record that fails on its last delivery before the dead-letter queue
   (DEAD_LETTER_AFTER receives) goes there for inspection (docs/reliability.md says how),
   and the run it names, if any, is failed with the reason (`fail_poisoned_run`): a run whose
   events cannot be processed ends FAILED, saying why, instead of staying RUNNING forever.

Partial failures only work when the event source mapping has FunctionResponseTypes
[ReportBatchItemFailures] (Chalice cannot set it; see docs/aws.md): without it Lambda deletes
the whole batch whatever we return. UPDRAFT_PARTIAL_BATCH=0 makes any failure raise instead.
"""

from __future__ import annotations

import json
import logging
from typing import Any

from chalicelib.backends.aws.components import Cloud
from chalicelib.backends.aws.messages import Decoded, decode
from chalicelib.backends.aws.wiring import EVENTS_MAX_RECEIVES
from chalicelib.engine import transitions
from chalicelib.engine.events import Event, Instruction, Kill, RunFinished
from chalicelib.engine.records import RunRecord
from chalicelib.engine.states import RunState
from chalicelib.errors import NotFoundError, UpdraftError

log = logging.getLogger("updraft.coordinator")

DUE_SLACK_S = 1.0
# Receives of one message before SQS moves it to the dead-letter queue (the events queue's
# redrive policy: infra/stack.yaml and provision.py, checked equal by the tests; wiring.py
# derives it: throttled receives plus the coordinator's own attempts).
DEAD_LETTER_AFTER = EVENTS_MAX_RECEIVES


def handle_batch(raw_event: dict[str, Any], cloud: Cloud) -> dict[str, Any]:
    from aws_lambda_powertools.utilities.batch import BatchProcessor, EventType

    decoded: list[tuple[str, Decoded]] = []
    records: dict[str, tuple[str, int]] = {}  # message id -> (body, receive count)

    def parse(record: Any) -> None:
        records[record.message_id] = (record.body, _receives(record))
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
    for message_id in dict.fromkeys(failures):
        body, receives = records.get(message_id, ("", 1))
        if receives >= DEAD_LETTER_AFTER:
            fail_poisoned_run(cloud, body, message_id, receives)
    if failures and not cloud.config.partial_batch:
        raise BatchFailedError(f"{len(failures)} of {len(decoded)} events failed; the batch is redelivered")
    return {"batchItemFailures": [{"itemIdentifier": m} for m in dict.fromkeys(failures)]}


def _receives(record: Any) -> int:
    try:
        return int(record.attributes.approximate_receive_count or 1)
    except (AttributeError, KeyError, TypeError, ValueError):
        return 1


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


# ---- poison events ------------------------------------------------------------------------------

def run_named(body: str) -> str | None:
    """The run an events-queue body names, if it names one (however malformed the rest is)."""
    try:
        data = json.loads(body)
    except ValueError:
        return None
    if not isinstance(data, dict):
        return None
    response = data.get("responsePayload")
    for holder in (data, data.get("event"), data.get("requestPayload"),
                   response.get("event") if isinstance(response, dict) else None):
        if isinstance(holder, dict) and isinstance(holder.get("run_id"), str) and holder["run_id"]:
            return str(holder["run_id"])
    return None


def fail_poisoned_run(cloud: Cloud, body: str, message_id: str, receives: int) -> None:
    """An event failed on its last delivery: it goes to the dead-letter queue, and the run it
    names is failed with the reason, its unfinished tasks cancelled (as a cancel would, so that
    nothing of it is dispatched any more). Idempotent; never raises (the record is reported
    failed whatever happens here, so SQS dead-letters it)."""
    run_id = run_named(body)
    extra = {"run_id": run_id, "message_id": message_id, "receives": receives}
    if run_id is None:
        log.error("poison event names no run: it goes to the dead-letter queue", extra=extra)
        return
    why = (f"an event of this run failed {receives} times and went to the events dead-letter queue "
           f"(SQS message {message_id}); see docs/reliability.md to inspect it")
    try:
        if _mark_failed(cloud, run_id, why):
            log.error("poison event: run failed", extra=extra)
    except Exception:
        log.exception("poison event: could not fail its run", extra=extra)


def _mark_failed(cloud: Cloud, run_id: str, why: str) -> bool:
    store, now = cloud.store, cloud.clock()
    try:
        run = store.get_run(run_id)
    except NotFoundError:
        log.error("poison event names an unknown run: it goes to the dead-letter queue", extra={"run_id": run_id})
        return False
    if run.state is RunState.RUNNING:
        failed = transitions.fail_run(store, run, why, now)
        if isinstance(failed, transitions.Refused):
            failed = failed.current if isinstance(failed.current, RunRecord) else store.get_run(run_id)
        run = failed
    if run.state is not RunState.FAILED or "failure" not in run.options:
        return False  # the run finished on its own: nothing to mark
    with store.batch():  # (3 rounds: a coordinator may move a task while we look)
        killed = transitions.cancel_all_live(store, run_id, now, log_tail=why, rounds=3)
    instructions: list[Instruction] = [Kill(run_id, rec.task_id, rec.attempt, rec.placement) for rec in killed]
    cloud.shell.apply([*instructions, RunFinished(run_id, RunState.FAILED.value)])
    return True
