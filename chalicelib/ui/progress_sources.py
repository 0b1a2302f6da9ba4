"""Where a progress tracker (chalicelib/ui/progress.py) reads task types and failures: the
local runtime's store and specs, or a client of the API (`updraft watch`, `submit --wait`)."""

from __future__ import annotations

from collections.abc import Collection, Iterable, Mapping
from typing import Any

from chalicelib.engine.states import TERMINAL_TASK, TaskState
from chalicelib.ui.progress import FAILED, UPSTREAM_FAILED, Failed, split_log

DETAILS_PER_LOOK = 10  # API: failed tasks whose log is fetched at one look (one request each)


class LocalSource:
    """The local runtime's store and the run's spec."""

    def __init__(self, rt: Any, run_id: str) -> None:
        self.rt = rt
        self.run_id = run_id

    def task_types(self) -> Mapping[str, str]:
        spec = self.rt.specs.get(self.run_id)
        return {task_id: task.task_type for task_id, task in spec.tasks.items()}

    def ended(self) -> Iterable[str]:
        return (rec.task_id for rec in self.rt.store.iter_tasks(self.run_id, TERMINAL_TASK))

    def failed(self, known: Collection[str]) -> list[Failed]:
        out = []
        for rec in self.rt.store.iter_tasks(self.run_id, [TaskState.FAILED, TaskState.UPSTREAM_FAILED]):
            if rec.task_id in known:
                continue
            detail, lines = split_log(rec.result.log_tail if rec.result is not None else None)
            out.append(Failed(rec.task_id, rec.state.value, rec.reason or "", rec.attempt, detail, lines,
                              rec.failed_parent))
        return out


class ApiSource:
    """A client of the API (updraft.Client): the run's graph for the types, its task list for
    the failures, and one task request per new failure for the end of its log."""

    types_every_s = 10.0  # per-type counts cost a request for every ended task: not at each poll

    def __init__(self, client: Any, run_id: str) -> None:
        self.client = client
        self.run_id = run_id

    def task_types(self) -> Mapping[str, str]:
        try:
            graph = self.client.graph(self.run_id)
        except Exception:  # an API without the graph shows no types, not an error
            return {}
        return {str(t["id"]): str(t.get("type") or t["id"]) for t in graph.get("tasks", [])}

    def ended(self) -> Iterable[str]:
        states = ",".join(s.value for s in TERMINAL_TASK)
        return (str(t["id"]) for t in self.client.tasks(self.run_id, state=states))

    def failed(self, known: Collection[str]) -> list[Failed]:
        out = []
        details = 0
        for t in self.client.tasks(self.run_id, state=f"{FAILED},{UPSTREAM_FAILED}"):
            task_id = str(t["id"])
            if task_id in known:
                continue
            state, reason, attempt = str(t.get("state")), str(t.get("reason") or ""), int(t.get("attempts") or 1)
            if state == FAILED and details < DETAILS_PER_LOOK:
                details += 1
                body = self.client.task(self.run_id, task_id)
                detail, lines = split_log(body.get("log_tail"), body.get("detail") or "")
                out.append(Failed(task_id, state, reason, attempt, detail, lines))
            else:
                out.append(Failed(task_id, state, reason, attempt, parent=t.get("failed_parent")))
        return out
