"""The shell around the coordinator in the cloud: applies its instructions.

    Launch       -> FunctionLauncher (async Invoke) or ContainerLauncher (container queue)
    Schedule     -> the events queue with DelaySeconds (longer delays hop in 900 s steps)
    Kill         -> best effort (functions cannot be stopped; see launchers)
    RunFinished  -> runs/<run>/manifest.json

A launch that fails is handled here, never lost: a transient error (throttling, a service
hiccup) puts the attempt back to READY and schedules its dispatch again a few seconds
later; a permanent one (function missing, access denied) fails the attempt with reason
LAUNCH and the service's message, so the run ends with an error a user can act on.
"""

from __future__ import annotations

import logging
import random
from collections.abc import Callable, Sequence

from msgspec import Struct

from chalicelib.attempt import AttemptResult
from chalicelib.backends.aws.launchers import LaunchError
from chalicelib.backends.aws.manifest import write_manifest
from chalicelib.engine import events as ev
from chalicelib.engine import transitions
from chalicelib.engine.ports import BlobStore, EventSink, Launcher, StateStore
from chalicelib.engine.spec import SpecCache
from chalicelib.engine.states import Reason

log = logging.getLogger("updraft.shell")

RETRYABLE_LAUNCH = ("Throttl", "TooManyRequests", "ServiceException", "ServiceUnavailable", "InternalError",
                    "ResourceNotReady", "RequestLimitExceeded", "Timeout", "EndpointConnectionError",
                    "ConnectionClosed", "ReadTimeout", "ConnectTimeout", "QueueSendError", "SlowDown")


def launch_error_is_retryable(message: str) -> bool:
    return any(marker in message for marker in RETRYABLE_LAUNCH)


class CloudShell(Struct):
    store: StateStore
    blobs: BlobStore
    specs: SpecCache
    events: EventSink
    launchers: dict[str, Launcher]
    clock: Callable[[], float]
    relaunch_delay_s: tuple[float, float] = (2.0, 10.0)

    def apply(self, instructions: Sequence[ev.Launch | ev.Schedule | ev.Kill | ev.RunFinished]) -> None:
        launches: dict[str, list[ev.Launch]] = {}
        finished: list[ev.RunFinished] = []
        for ins in instructions:
            if isinstance(ins, ev.Launch):
                launches.setdefault(ins.placement, []).append(ins)
            elif isinstance(ins, ev.Schedule):
                self.events.send([ins.event], ins.delay_s)
            elif isinstance(ins, ev.Kill):
                self.launchers[_kind(ins.placement)].kill(ins.run_id, ins.task_id, ins.attempt)
            else:
                finished.append(ins)
        for placement, group in launches.items():
            self._launch(placement, group)
        for done in finished:
            self._finish(done)

    def _launch(self, placement: str, group: list[ev.Launch]) -> None:
        try:
            self.launchers[_kind(placement)].launch(group)
        except LaunchError as exc:
            self._launch_failed(exc.failed)
        except Exception as exc:
            self._launch_failed([(launch, f"{type(exc).__name__}: {exc}") for launch in group])

    def _launch_failed(self, failed: list[tuple[ev.Launch, str]]) -> None:
        now = self.clock()
        fail_events: list[ev.Event] = []
        for launch, why in failed:
            extra = {"run_id": launch.run_id, "task_id": launch.task_id, "attempt": launch.attempt}
            if not launch_error_is_retryable(why):
                log.error("launch failed for good: %s", why, extra=extra)
                fail_events.append(ev.TaskFailed(launch.run_id, launch.task_id, launch.attempt, Reason.LAUNCH.value,
                                                 AttemptResult(log_tail=f"could not start the attempt: {why}")))
                continue
            delay = random.uniform(*self.relaunch_delay_s)
            log.warning("launch failed, retrying in %.1f s: %s", delay, why, extra=extra)
            moved = transitions.relaunch(self.store, launch.run_id, launch.task_id, launch.attempt, now + delay)
            if isinstance(moved, transitions.Refused):
                log.info("no relaunch: %s", moved.why, extra=extra)
                continue  # the attempt moved on (cancelled, or it did start after all)
            self.events.send([ev.DispatchDue(launch.run_id, launch.task_id, launch.attempt)], delay)
        if fail_events:
            self.events.send(fail_events)

    def _finish(self, done: ev.RunFinished) -> None:
        try:
            write_manifest(done.run_id, self.store, self.blobs, self.specs.get(done.run_id))
        except Exception:
            log.exception("could not write the manifest", extra={"run_id": done.run_id})
        log.info("run finished: %s", done.state, extra={"run_id": done.run_id})


def _kind(placement: str) -> str:
    return "function" if placement == "function" else "container"
