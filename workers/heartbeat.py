"""What keeps a running container task alive for as long as it runs: the worker's heartbeat.

Three things are held while a task runs, each on its own terms:

- the attempt's lease in the state table (DynamoDB): renewed every beat, with no upper bound.
  This is what says the task is alive; the sweeper retries an attempt whose lease ran out.
- the container-queue message: SQS caps a message's visibility at 12 h from its receipt
  (ChangeMessageVisibility cannot extend past it), after which it would be delivered to a
  second worker. So the message is extended only while it can be; shortly before the cap the
  worker *parks* it: deletes it, and from then on the claim in the table is the only record
  of the attempt (`MessageHold`).
- ECS task scale-in protection: set with an expiry (UpdateTaskProtection, at most 2880
  minutes) and renewed well before it runs out (`ScaleInProtection`).

A 20 h task, on the timeline of its message:

    0 h      receive, claim (DISPATCHED -> RUNNING, lease now+L)
    every L/3  extend visibility to now+L; renew lease to now+L; protection if due
    12 h-2L  park: delete the message (no other worker can ever receive it)
    ...      renew lease to now+L every L/3 (the table has no 12 h cap)
    20 h     completion to the events queue; nothing left to delete

and what happens when the worker is lost:

    dies before the park   its message reappears after L; the next receiver's claim fails
                           (the attempt is RUNNING), it drops the message; the lease runs
                           out and the sweeper retries the attempt (LeaseExpired)
    dies after the park    no message to reappear; the lease runs out, the same retry
    SIGTERM (any time)     un-claim (RUNNING -> DISPATCHED), then hand the message back:
                           made visible at once, or - parked - sent again with the same
                           payload (a continuation the next worker claims like the first)

So the only bound on a container task's length is its own `timeout_s` (and how long
Fargate lets a task live: docs/aws.md, "Long tasks").
"""

from __future__ import annotations

import json
import os
import threading
import urllib.request
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from chalicelib.backends.aws.claims import renew
from chalicelib.backends.aws.config import SQS_MAX_VISIBILITY_S
from chalicelib.backends.aws.observability import obs
from chalicelib.engine.ports import MessageQueue, QueueMessage
from chalicelib.engine.states import Reason

if TYPE_CHECKING:
    from chalicelib.backends.aws.components import Cloud
    from workers.worker import Worker

# UpdateTaskProtection's expiresInMinutes: at most 2880 (48 h). Protection is set for
# PROTECTION_MINUTES and renewed every PROTECTION_RENEW_S, so a few failed renewals in a row
# still leave a running task protected.
PROTECTION_MAX_MINUTES = 2880
PROTECTION_MINUTES = 240
PROTECTION_RENEW_S = 3600.0


class MessageHold:
    """The worker's hold on one container-queue message while its attempt runs.

    `keep(now)` extends the message's visibility by the lease while SQS still allows it, and
    parks (deletes) it once less than two leases remain before the 12 h cap: after that the
    message can never come back, and the attempt's lease alone detects a lost worker.
    """

    def __init__(self, queue: MessageQueue, msg: QueueMessage, received_at: float, lease_s: float) -> None:
        self.queue, self.msg = queue, msg
        self.received_at, self.lease_s = received_at, lease_s
        self.parked = False

    def park_at(self) -> float:
        return self.received_at + SQS_MAX_VISIBILITY_S - 2 * self.lease_s

    def keep(self, now: float) -> None:
        if self.parked:
            return
        if now >= self.park_at():
            self.queue.delete([self.msg])
            self.parked = True
            obs().logger.info("message parked before the 12 h visibility cap; the lease alone holds the attempt")
            return
        self.queue.extend(self.msg, self.lease_s)

    def done(self) -> None:
        """The attempt finished and its completion was sent: the message goes."""
        if not self.parked:
            self.queue.delete([self.msg])

    def hand_back(self) -> None:
        """The attempt was un-claimed (SIGTERM): let the next worker have it, now."""
        if self.parked:  # a continuation: the same payload, claimed like the first delivery
            self.queue.send([self.msg.body])
        else:
            self.queue.release(self.msg)


class Heartbeat:
    """Every `every_s` (real seconds; lease/3 by default): keep the message (MessageHold), renew
    the attempt's lease, renew scale-in protection when due. Each part is tried on its own: a
    failed visibility change never costs the lease its renewal."""

    def __init__(self, worker: Worker, hold: MessageHold, run_id: str, task_id: str, attempt: int,
                 every_s: float | None = None) -> None:
        self.worker, self.hold = worker, hold
        self.ids = (run_id, task_id, attempt)
        self.every_s = worker.lease_s / 3 if every_s is None else every_s
        self.beats = 0
        self._done = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="heartbeat", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._done.set()
        if self._thread.is_alive() and self._thread is not threading.current_thread():
            self._thread.join()

    def _loop(self) -> None:
        while not self._done.wait(self.every_s):
            if not self.beat():
                return

    def beat(self) -> bool:
        """One beat; False once the attempt was taken away (its task is then killed)."""
        w = self.worker
        now = w.cloud.clock()
        try:
            self.hold.keep(now)
        except Exception:  # the lease below still holds the attempt
            w.obs.logger.exception("could not keep the container message")
        try:
            if not renew(w.cloud.store, *self.ids, now, w.lease_s):
                att = w._attempt
                if att is not None:  # cancelled, or retried elsewhere: stop the work
                    att.kill(Reason.CANCELLED.value, "the attempt is no longer current (cancelled or retried)")
                return False
        except Exception:  # a missed beat is retried; the lease has slack
            w.obs.logger.exception("heartbeat failed")
        w._protection.renew(now)
        self.beats += 1
        return True


class ScaleInProtection:
    """ECS task scale-in protection while busy (only when running on ECS), renewed while a
    task runs: the scaler stops only idle workers, however long a task takes."""

    def __init__(self, cloud: Cloud, enabled: bool = True, task_arn: str | None = None,
                 call: Callable[..., Any] | None = None) -> None:
        self.cloud = cloud
        self._task_arn = task_arn
        self._uri = os.environ.get("ECS_CONTAINER_METADATA_URI_V4") if enabled else None
        self._enabled = enabled and (task_arn is not None or bool(self._uri))
        self._call = call
        self._wanted = False  # a task is running: protection should be on
        self._set_at: float | None = None  # when it was last set on (None: not since wanted)

    def set(self, on: bool) -> None:
        if not self._enabled:
            return
        self._wanted, self._set_at = on, None
        try:
            kwargs: dict[str, Any] = {"expiresInMinutes": PROTECTION_MINUTES} if on else {}
            call = self._call or self.cloud.clients.ecs.update_task_protection
            call(cluster=self.cloud.config.ecs_cluster, tasks=[self._arn()], protectionEnabled=on, **kwargs)
            self._set_at = self.cloud.clock() if on else None
        except Exception:  # protection is an optimisation; leases keep work safe
            obs().logger.exception("could not set scale-in protection")

    def renew(self, now: float) -> None:
        """Set it again if it was set PROTECTION_RENEW_S ago or more, or the last try failed."""
        if self._wanted and (self._set_at is None or now - self._set_at >= PROTECTION_RENEW_S):
            self.set(True)

    def _arn(self) -> str:
        if self._task_arn is None:
            with urllib.request.urlopen(f"{self._uri}/task", timeout=2) as resp:  # noqa: S310 - ECS agent
                self._task_arn = str(json.load(resp)["TaskARN"])
        return self._task_arn
