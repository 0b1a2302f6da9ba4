"""The cancel and resume guards, and the one place each of the two run transitions the
service makes is called from (so a named transition of the engine can take them over).

    cancellable   409 when the run already ended
    resumable     409 when it SUCCEEDED, or a live process executes it (RunBusyError), or it
                  is RUNNING on a runtime that cannot tell whether anyone executes it
"""

from __future__ import annotations

from chalicelib.engine.lifecycle import Resumed, begin_resume
from chalicelib.engine.records import RunRecord
from chalicelib.engine.states import TERMINAL_RUN, RunState
from chalicelib.errors import RunBusyError, StateConflictError
from chalicelib.service.runtime import Runtime


def cancellable(run: RunRecord) -> RunRecord:
    if run.state in TERMINAL_RUN:
        raise StateConflictError(f"run {run.run_id} is already {run.state.value}", run)
    return run


def resumable(rt: Runtime, run: RunRecord) -> RunRecord:
    if run.state is RunState.SUCCEEDED:
        raise StateConflictError(f"run {run.run_id} already SUCCEEDED: nothing to resume", run)
    pid = rt.owner(run.run_id)
    if pid is not None:
        raise RunBusyError(f"run {run.run_id} is being executed by process {pid}")
    return run


def cancel_live(rt: Runtime, run_id: str) -> RunRecord | None:
    """The cancel transition: the runtime stops what runs and the coordinator cancels."""
    return rt.cancel(run_id)


def begin_resume_run(rt: Runtime, run_id: str) -> Resumed:
    """The resume transition: the run RUNNING again with a resume token, its tasks reset next
    (`Runtime.resume_tasks`). A RUNNING run is taken over only where the runtime knows nobody
    executes it (`resumable` checked)."""
    return begin_resume(run_id, rt.store, allow_running=rt.tracks_owner)
