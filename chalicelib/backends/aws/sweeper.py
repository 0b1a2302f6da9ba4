"""The sweeper (a scheduled function): nothing can hang silently.

Every few minutes:
- expired leases: each in-flight attempt whose lease ran out (a function that vanished, a
  worker that stopped heartbeating) gets a LeaseExpired event; the coordinator retries or
  fails it.
- quiet runs: a RUNNING run whose counters have not moved for `stuck_run_after_s` is
  re-counted from its task items. All tasks terminal -> the run is finished here (its
  counters lagged after a coordinator crash); READY tasks nobody dispatched -> a Start event;
  a resume whose windows stopped (its token still in the run's options) -> its first Resume
  window again (never finished here: its tasks are terminal only until they are reset).
- missing manifests of recently finished runs are written.
- the worker service is scaled to the container queue's backlog.
"""

from __future__ import annotations

import logging

from msgspec import Struct, field

from chalicelib.backends.aws.components import Cloud
from chalicelib.backends.aws.manifest import manifest_key, write_manifest
from chalicelib.engine import events as ev
from chalicelib.engine.lifecycle import RESUMING
from chalicelib.engine.states import DONE_OK, TERMINAL_RUN, TERMINAL_TASK, RunState, TaskState
from chalicelib.errors import StateConflictError

log = logging.getLogger("updraft.sweeper")


class SweepReport(Struct):
    expired: int = 0
    restarted: list[str] = field(default_factory=list)
    finished: list[str] = field(default_factory=list)
    manifests: list[str] = field(default_factory=list)
    workers: int | None = None

    def to_dict(self) -> dict[str, object]:
        return {"expired": self.expired, "restarted": self.restarted, "finished": self.finished,
                "manifests": self.manifests, "workers": self.workers}


def sweep(cloud: Cloud, now: float | None = None, limit: int = 500) -> SweepReport:
    now = cloud.clock() if now is None else now
    report = SweepReport()
    expired = cloud.store.expired_leases(now, limit)
    cloud.sink.send([ev.LeaseExpired(r.run_id, r.task_id, r.attempt) for r in expired])
    report.expired = len(expired)
    _quiet_runs(cloud, now, report)
    _missing_manifests(cloud, report)
    try:
        report.workers = cloud.scaler.scale(refresh=True)
    except Exception:
        log.exception("could not scale the worker service")
    return report


def _quiet_runs(cloud: Cloud, now: float, report: SweepReport) -> None:
    store = cloud.store
    for run in store.list_runs(limit=1000, state=RunState.RUNNING):
        if now - store.counters_last_changed(run.run_id) < cloud.config.stuck_run_after_s:
            continue
        token = run.options.get(RESUMING)
        if token is not None:  # a resume whose windows stopped: its windows again from the first (each is idempotent)
            cloud.sink.send([ev.Resume(run.run_id, str(token))])
            report.restarted.append(run.run_id)
            continue
        counts = store.recount(run.run_id)
        live = {s: n for s, n in counts.items() if TaskState(s) not in TERMINAL_TASK}
        if not live:
            bad = any(TaskState(s) not in DONE_OK for s in counts)
            final = RunState.FAILED if bad else RunState.SUCCEEDED
            try:
                store.finish_recounted(run.run_id, final, counts, now)
            except StateConflictError:
                continue
            log.warning("finished a run whose counters lagged: %s", final.value, extra={"run_id": run.run_id})
            write_manifest(run.run_id, store, cloud.blobs, cloud.specs.get(run.run_id))
            report.finished.append(run.run_id)
        elif counts.get(TaskState.READY.value):
            cloud.sink.send([ev.Start(run.run_id)])
            report.restarted.append(run.run_id)


def _missing_manifests(cloud: Cloud, report: SweepReport, per_state: int = 10) -> None:
    for state in sorted(TERMINAL_RUN):
        for run in cloud.store.list_runs(limit=per_state, state=state):
            if cloud.blobs.exists(manifest_key(run.run_id)):
                continue
            try:
                write_manifest(run.run_id, cloud.store, cloud.blobs, cloud.specs.get(run.run_id))
                report.manifests.append(run.run_id)
            except Exception:
                log.exception("could not write a missing manifest", extra={"run_id": run.run_id})
