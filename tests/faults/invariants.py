"""What must hold after any fault: checked after every fault test, on any StateStore/BlobStore."""

from __future__ import annotations

import hashlib
from collections import Counter

from chalicelib.engine.ports import BlobStore, StateStore
from chalicelib.engine.spec import RunSpec
from chalicelib.engine.states import DONE_OK, TERMINAL_TASK, RunState
from chalicelib.runner.keys import data_key


def check_invariants(store: StateStore, blobs: BlobStore, run_id: str, spec: RunSpec) -> list[str]:
    """Every violated invariant, as a sentence (empty when the run is consistent)."""
    broken: list[str] = []
    run = store.get_run(run_id)
    tasks = store.list_tasks(run_id)
    if sorted(t.task_id for t in tasks) != sorted(spec.tasks):
        broken.append("the store's tasks differ from the spec's")
    states = Counter(t.state.value for t in tasks)
    if dict(states) != store.counts(run_id):
        broken.append(f"run counters {store.counts(run_id)} differ from the task states {dict(states)}")
    for t in tasks:
        if t.state not in TERMINAL_TASK:
            broken.append(f"task {t.task_id} is {t.state.value}, not terminal")
        if t.lease_expires is not None and t.state in TERMINAL_TASK:
            broken.append(f"task {t.task_id} is {t.state.value} with an orphaned lease")
        if t.state in DONE_OK:
            outputs = (t.result.outputs if t.result is not None else {})
            for path in spec.tasks[t.task_id].outputs:
                key = data_key(run_id, path)
                if not blobs.exists(key):
                    broken.append(f"output {path} of {t.task_id} is missing")
                elif path in outputs and hashlib.sha256(blobs.get_bytes(key)).hexdigest() != outputs[path]:
                    broken.append(f"output {path} of {t.task_id} does not match its recorded hash")
    all_ok = all(t.state in DONE_OK for t in tasks)
    if run.state is RunState.SUCCEEDED and not all_ok:
        broken.append("run SUCCEEDED although some task did not")
    if run.state is RunState.FAILED and all_ok:
        broken.append("run FAILED although every task succeeded")
    if run.state is RunState.RUNNING:
        broken.append("run still RUNNING")
    return broken
