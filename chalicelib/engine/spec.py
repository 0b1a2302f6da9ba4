"""A run's static spec: the validated workflow and its graph, loaded once per process."""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable

from msgspec import Struct

from chalicelib.engine.ports import BlobStore
from chalicelib.workflow.formats import native
from chalicelib.workflow.graph import Graph, build_graph
from chalicelib.workflow.model import Task, Workflow


def spec_key(run_id: str) -> str:
    return f"runs/{run_id}/workflow.json"


class RunSpec(Struct, frozen=True):
    workflow: Workflow
    graph: Graph
    tasks: dict[str, Task]

    @classmethod
    def of(cls, workflow: Workflow) -> RunSpec:
        return cls(workflow, build_graph(workflow), workflow.task_map())


class SpecCache:
    """run_id -> RunSpec, loaded from the blob store on first use (warm functions keep it)."""

    def __init__(self, loader: Callable[[str], RunSpec], capacity: int = 32) -> None:
        self._loader = loader
        self._capacity = capacity
        self._items: OrderedDict[str, RunSpec] = OrderedDict()

    @classmethod
    def from_blobs(cls, blobs: BlobStore, capacity: int = 32) -> SpecCache:
        def load(run_id: str) -> RunSpec:
            text = blobs.get_bytes(spec_key(run_id)).decode("utf-8")
            return RunSpec.of(native.parse(text, source=spec_key(run_id)))

        return cls(load, capacity)

    def put(self, run_id: str, spec: RunSpec) -> None:
        self._items[run_id] = spec
        self._items.move_to_end(run_id)
        while len(self._items) > self._capacity:
            self._items.popitem(last=False)

    def get(self, run_id: str) -> RunSpec:
        spec = self._items.get(run_id)
        if spec is None:
            spec = self._loader(run_id)
            self.put(run_id, spec)
        else:
            self._items.move_to_end(run_id)
        return spec
