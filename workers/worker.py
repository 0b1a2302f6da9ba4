"""The Fargate worker: a thin loop around the runner (chalicelib.runner).

    python -m workers.worker [--idle-s 300] [--lease-s 180]     (names from UPDRAFT_* variables)

Loop: long-poll the container queue for one message {run_id, task_id, attempt}; then the
claim-run-report path it shares with the task function (chalicelib/backends/aws/attempts.py):
claim the attempt (DISPATCHED -> RUNNING, conditional: a duplicate message or a cancelled task is
dropped without running anything); run it, without the worker's AWS credentials
(task_env.py) - the worker is non-dumpable, so a task cannot read them from /proc/$PPID/environ
either (the image runs as a non-root user: root could); send the completion to the events
queue; delete the message. While the task runs, a heartbeat every lease/3 extends the message's
visibility and the attempt's lease; if the lease was taken away (cancel, or the sweeper retried
it), the task is killed. Tasks longer than SQS's 12 h visibility cap: the message is parked
(deleted) before the cap and the lease alone holds the attempt (workers/heartbeat.py).

Started with UPDRAFT_ONE_TASK (a container attempt bigger than the service's task size gets a
Fargate task of its own, launchers.ContainerLauncher): that payload is the only message; the
worker runs it like a queued one, then exits.

SIGTERM (scale-in, deploy): stop polling; a running task is killed, un-claimed
(RUNNING -> DISPATCHED) and its message made visible again at once (a parked one is sent
again), so another worker runs it. A worker exits 0 after `idle_s` without a message; while busy it protects itself from
ECS scale-in (task scale-in protection), so the scaler only stops idle workers.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import signal
import threading
import time
from collections.abc import Iterator
from typing import Any

from chalicelib.backends.aws.attempts import Order, Size, Where, run_attempt
from chalicelib.backends.aws.components import Cloud
from chalicelib.backends.aws.launchers import ONE_TASK_ENV
from chalicelib.backends.aws.messages import parse_task_payload, payload_resources
from chalicelib.backends.aws.observability import Observability, obs
from chalicelib.backends.aws.task_env import forbid_reading_this_process
from chalicelib.engine.ports import MessageQueue, QueueMessage
from chalicelib.engine.states import Reason
from chalicelib.runner.execute import Attempt
from chalicelib.runner.procs import set_subreaper
from workers.heartbeat import Heartbeat, MessageHold, ScaleInProtection

POLL_WAIT_S = 20.0


class Worker:
    def __init__(self, cloud: Cloud, observe: Observability, idle_s: float | None = None,
                 lease_s: float | None = None, poll_wait_s: float = POLL_WAIT_S,
                 beat_every_s: float | None = None) -> None:
        self.cloud = cloud
        self.obs = observe
        self.idle_s = cloud.config.worker_idle_s if idle_s is None else idle_s
        self.lease_s = cloud.config.worker_lease_s if lease_s is None else lease_s
        self.poll_wait_s = poll_wait_s
        self.beat_every_s = beat_every_s  # None: lease/3 (tests beat faster than their clock)
        self._heartbeat: Heartbeat | None = None
        self.queue: MessageQueue = cloud.container_queue
        self.workroot = os.path.join(cloud.config.workroot, "worker")
        self.stopping = threading.Event()
        self._attempt: Attempt | None = None
        self._killed_for_stop = False
        self._protection = ScaleInProtection(cloud)
        self.all_orphans = False  # main(): this process runs nothing but tasks (see run_task)
        self.tasks_run = 0
        # the Fargate size this worker runs at (the stack's task size, or a RunTask override),
        # kept on each attempt's result: which size a task actually ran on
        self.size = Size(container_cpu=cloud.config.worker_cpu / 1024,
                         container_memory_mb=cloud.config.worker_memory_mb)

    # ---- loop -----------------------------------------------------------------------------

    def run(self) -> int:
        last_work = time.monotonic()
        while not self.stopping.is_set():
            wait = min(self.poll_wait_s, max(0.0, self.idle_s - (time.monotonic() - last_work)))
            messages = self.queue.receive(1, wait_s=wait, visibility_s=self.lease_s)
            if messages and self.stopping.is_set():  # SIGTERM came during the long poll
                self.queue.release(messages[0])
                break
            if not messages:
                if time.monotonic() - last_work >= self.idle_s:
                    self.obs.logger.info("idle for %.0f s: exiting", self.idle_s)
                    return 0
                continue
            try:
                with self.obs.invocation("worker"):
                    self.handle(messages[0])
            except Exception:  # the attempt's lease runs out and the sweeper retries it
                self.obs.logger.exception("could not process a container message")
            last_work = time.monotonic()
        return 0

    def stop(self, *_: Any) -> None:
        """SIGTERM: stop polling; kill a running task, which is then handed back."""
        self.stopping.set()
        att = self._attempt
        if att is not None:
            self._killed_for_stop = True
            att.kill(Reason.CANCELLED.value, "the worker was stopped (SIGTERM); the task goes back to the queue")

    # ---- one message ----------------------------------------------------------------------

    def handle(self, msg: QueueMessage) -> None:
        try:
            payload = json.loads(msg.body)
            run_id, task_id, attempt = parse_task_payload(payload)
            order = Order(run_id, task_id, attempt, payload_resources(payload))
        except ValueError as exc:  # left for the dead-letter queue after a few receives
            self.obs.logger.error("unreadable container message: %s", exc)
            return
        self._killed_for_stop = False
        hold = MessageHold(self.queue, msg, self.cloud.clock(), self.lease_s)  # the 12 h cap counts from ~now
        where = Where(placement="container", workroot=self.workroot, lease_s=lambda task: self.lease_s,
                      size=self.size, all_orphans=self.all_orphans)
        ran = run_attempt(self.cloud, self.obs, order, where, while_running=lambda: self._busy(hold, order),
                          on_start=self._started, stopped=lambda: self._killed_for_stop)
        if ran.handed_back:
            hold.hand_back()  # visible again at once (a parked message: sent again); another worker runs it
            return
        if not ran.claimed:  # a duplicate that ran nothing
            self.queue.delete([msg])
            return
        hold.done()  # deleted, unless it was parked (then already gone)
        self.tasks_run += 1

    @contextlib.contextmanager
    def _busy(self, hold: MessageHold, order: Order) -> Iterator[None]:
        """While a claimed attempt runs: the heartbeat (message visibility or its park, the
        attempt's lease, ECS scale-in protection's renewal; workers/heartbeat.py)."""
        beat = self._heartbeat = Heartbeat(self, hold, order.run_id, order.task_id, order.attempt,
                                           self.beat_every_s)
        self._protection.set(True)
        beat.start()
        try:
            yield
        finally:
            beat.stop()
            self._attempt, self._heartbeat = None, None
            self._protection.set(False)

    def _started(self, att: Attempt) -> None:
        self._attempt = att
        if self.stopping.is_set():  # SIGTERM arrived while staging in
            self.stop()


class OneMessage:
    """The container queue of a worker started for one attempt (RunTask with UPDRAFT_ONE_TASK,
    launchers.ContainerLauncher): the attempt's payload, received once; nothing to delete."""

    def __init__(self, body: str) -> None:
        self.pending = [QueueMessage(body=body, receipt="one-task")]

    def receive(self, max_messages: int = 1, wait_s: float = 0.0, visibility_s: float | None = None
                ) -> list[QueueMessage]:
        out, self.pending = self.pending[:max_messages], self.pending[max_messages:]
        return out

    def send(self, bodies: Any, delay_s: float = 0.0) -> None:
        """A parked message handed back: as `release`, the lease expires into a retry."""

    def delete(self, messages: Any) -> None:
        """Nothing to delete: the payload came in the task's environment."""

    def extend(self, message: QueueMessage, visibility_s: float) -> None:
        """Nothing to extend: the attempt's lease is renewed in the state table."""

    def release(self, message: QueueMessage) -> None:
        """Stopped before the end: the attempt goes back to DISPATCHED (unclaim) and its lease
        expires into a retry (the sweeper), as for a queued message nobody picks up."""

    def backlog(self) -> int:
        return len(self.pending)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--idle-s", type=float, default=None, help="exit after this long without work")
    parser.add_argument("--lease-s", type=float, default=None, help="a running task's lease")
    parser.add_argument("--poll-wait-s", type=float, default=POLL_WAIT_S, help="long-poll wait")
    args = parser.parse_args(argv)
    # Before anything else: the environment this process was started with holds the container
    # credentials URI. Non-dumpable also means no core dumps and no same-user ptrace of the worker.
    forbid_reading_this_process()
    one_task = os.environ.get(ONE_TASK_ENV)
    worker = Worker(Cloud.from_env(), obs(), 0.0 if one_task else args.idle_s, args.lease_s,
                    0.0 if one_task else args.poll_wait_s)
    if one_task:  # a Fargate task of its own size for one attempt: run it, then exit
        worker.queue = OneMessage(one_task)
        worker._protection = ScaleInProtection(worker.cloud, enabled=False)  # no service scales it in
    # what a task leaves running (setsid, double fork) comes back to this process, which kills
    # and reaps it when the task ends (runner/procs.py); it runs nothing else
    worker.all_orphans = set_subreaper()
    signal.signal(signal.SIGTERM, worker.stop)
    code = worker.run()
    worker.cloud.store.flush()
    return code


if __name__ == "__main__":
    raise SystemExit(main())
