"""WfCommons WfFormat 1.4-1.6: graph, recorded command, runtime, sizes, cores and memory."""

from __future__ import annotations

import gzip
import json
from pathlib import Path
from typing import Any

import pytest

from chalicelib.errors import WorkflowError
from chalicelib.workflow import formats
from chalicelib.workflow.graph import build_graph
from chalicelib.workflow.model import Placement


def spec_task(tid: str, parents: list[str], ins: list[str], outs: list[str],
              name: str | None = None) -> dict[str, Any]:
    return {"name": name or tid, "id": tid, "parents": parents, "children": [],
            "inputFiles": ins, "outputFiles": outs}


def trace(version: str = "1.5", **extra_exec: Any) -> dict[str, Any]:
    return {
        "name": "tiny", "schemaVersion": version,
        "workflow": {
            "specification": {
                "tasks": [spec_task("split_ID01", [], ["in.fa"], ["a.fa", "b.fa"]),
                          spec_task("map_ID02", ["split_ID01"], ["a.fa", "ref"], ["a.sam"]),
                          spec_task("map_ID03", ["split_ID01"], ["b.fa", "ref"], ["b.sam"])],
                "files": [{"id": "in.fa", "sizeInBytes": 1000}, {"id": "a.fa", "sizeInBytes": 400},
                          {"id": "b.fa", "sizeInBytes": 600}, {"id": "ref", "sizeInBytes": 5000},
                          {"id": "a.sam", "sizeInBytes": 10}, {"id": "b.sam", "sizeInBytes": 20}],
            },
            "execution": {
                "makespanInSeconds": 30, "executedAt": "now",
                "tasks": [
                    {"id": "split_ID01", "runtimeInSeconds": 1.5,
                     "command": {"program": "split", "arguments": ["in.fa", "2"]}},
                    {"id": "map_ID02", "runtimeInSeconds": 12.25, "coreCount": 4,
                     "memoryInBytes": 300 * 1024 * 1024,
                     "command": {"program": "bowtie2", "arguments": ["-x", "ref", "a.fa"]},
                     **extra_exec},
                    {"id": "map_ID03", "runtimeInSeconds": 950.0},
                ],
            },
        },
    }


def load(data: dict[str, Any]) -> Any:
    return formats.loads(json.dumps(data), source="trace.json")


def test_specification_and_execution_are_joined_by_task_id() -> None:
    w = load(trace())
    split, m2, _ = w.tasks
    assert [t.id for t in w.tasks] == ["split_ID01", "map_ID02", "map_ID03"]
    assert split.command == ("split", "in.fa", "2") and split.type == "split"
    assert m2.command == ("bowtie2", "-x", "ref", "a.fa") and m2.type == "bowtie2"
    assert m2.after == ("split_ID01",) and m2.inputs == ("a.fa", "ref")
    assert m2.resources.cpus == 4 and m2.resources.memory_mb == 300
    assert m2.hints["runtime_s"] == 12.25 and m2.hints["memory_bytes"] == 300 * 1024 * 1024
    assert all(t.placement is Placement.AUTO for t in w.tasks)
    assert build_graph(w).edge_count == 2


def test_sizes_go_on_producers_and_on_consumers_of_workflow_inputs() -> None:
    split, m2, _ = load(trace()).tasks
    assert split.hints["size:a.fa"] == 400 and split.hints["size:b.fa"] == 600
    assert split.hints["size:in.fa"] == 1000  # a workflow input it reads
    assert m2.hints["size:ref"] == 5000 and m2.hints["size:a.sam"] == 10
    assert "size:a.fa" not in m2.hints  # made by split, not an input of the workflow


def test_without_a_program_the_type_is_the_name_without_its_id_suffix() -> None:
    m3 = load(trace()).task_map()["map_ID03"]
    assert m3.type == "map" and m3.command == ("map",)


def test_long_runtimes_get_a_longer_timeout_and_are_left_to_auto_placement() -> None:
    m3 = load(trace()).task_map()["map_ID03"]
    assert m3.resources.timeout_s == 1900 and m3.placement is Placement.AUTO


def test_small_recorded_memory_is_raised_to_the_smallest_function() -> None:
    data = trace(memoryInBytes=3_000_000)
    assert load(data).task_map()["map_ID02"].resources.memory_mb == 128


def test_version_1_6_with_metrics_and_type_names() -> None:
    data = trace("1.6")
    data["workflow"]["specification"]["tasks"][1]["name"] = "map"
    data["workflow"]["execution"]["metrics"] = {"anything": 1}
    w = load(data)
    assert w.tasks[1].id == "map_ID02" and w.tasks[1].type == "bowtie2"
    assert "WfFormat 1.6" in w.description


def inline_trace() -> dict[str, Any]:
    def files(ins: list[str], outs: list[str]) -> list[dict[str, Any]]:
        return ([{"link": "input", "name": f, "sizeInBytes": 7} for f in ins]
                + [{"link": "output", "name": f, "sizeInBytes": 9} for f in outs])

    return {"name": "mf", "schemaVersion": "1.4", "workflow": {"tasks": [
        {"name": "split_ID1", "id": "ID1", "parents": [], "files": files(["q.fa"], ["q.0"]),
         "runtimeInSeconds": 0.5, "cores": 1, "category": "split",
         "command": {"program": "split_fasta", "arguments": ["./split_fasta", "1", "q.fa"]}},
        {"name": "blastall_ID2", "id": "ID2", "parents": ["split_ID1"],
         "files": files(["q.0"], ["q.0.out", "q.0.err"]), "runtimeInSeconds": 9.8,
         "command": {"program": "blastall", "arguments": [
             "./blastall", "-i", "q.0", "-o", "q.0.out", "2>", "q.0.err"]}},
    ]}}


def test_version_1_4_inline_files_and_parents_by_name() -> None:
    split, blast = load(inline_trace()).tasks
    assert split.id == "split_ID1" and blast.after == ("split_ID1",)
    assert split.command == ("./split_fasta", "1", "q.fa")  # argv[0] was recorded
    assert blast.shell == "./blastall -i q.0 -o q.0.out 2> q.0.err"  # a redirection: shell
    assert blast.outputs == ("q.0.out", "q.0.err") and blast.hints["size:q.0.out"] == 9
    assert split.hints["size:q.fa"] == 7


def test_odd_file_names_are_mapped_and_reported() -> None:
    data = trace()
    spec = data["workflow"]["specification"]
    spec["tasks"][0]["inputFiles"] = ["/scratch/in.fa"]
    w = load(data)
    assert w.tasks[0].inputs == ("_abs/scratch/in.fa",)
    assert "'/scratch/in.fa' -> '_abs/scratch/in.fa'" in w.description


def test_unknown_parent_is_rejected_naming_the_task() -> None:
    data = trace()
    data["workflow"]["specification"]["tasks"][2]["parents"] = ["ghost"]
    with pytest.raises(WorkflowError) as err:
        load(data)
    assert "'map_ID03'" in str(err.value) and "'ghost'" in str(err.value)


def test_a_trace_without_a_graph_says_what_it_expected() -> None:
    with pytest.raises(WorkflowError) as err:
        load({"schemaVersion": "1.5", "workflow": {"execution": {}}})
    assert "workflow.specification.tasks" in str(err.value)


def _json(path: Path) -> Any:
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rt") as fh:
        return json.load(fh)


@pytest.mark.parametrize("name", ["srasearch-chameleon-10a-001.json",
                                  "montage-chameleon-dss-125d-001.json.gz"])
def test_real_traces_keep_types_runtimes_and_sizes(shared_workflows: Path, name: str) -> None:
    path = shared_workflows / "wfcommons" / name
    raw = _json(path)["workflow"]
    w = formats.load(str(path))
    runs = {e["id"]: e for e in raw["execution"]["tasks"]}
    sizes = {f["id"]: f["sizeInBytes"] for f in raw["specification"]["files"]}
    for task in w.tasks:
        assert task.type == runs[task.id]["command"]["program"]
        assert task.hints["runtime_s"] == runs[task.id]["runtimeInSeconds"]
        for out in task.outputs:
            assert task.hints[f"size:{out}"] == sizes[out]


@pytest.mark.parametrize(("field", "value"), [("parents", 5), ("parents", ["split_ID01", 7]),
                                              ("inputFiles", "a.fa"), ("outputFiles", [None])])
def test_a_malformed_list_of_names_is_an_error_not_a_lost_edge(field: str, value: Any) -> None:
    data = trace()
    data["workflow"]["specification"]["tasks"][1][field] = value
    with pytest.raises(WorkflowError, match=f"task 'map_ID02', field '{field}': must be a list of names"):
        load(data)


def test_inline_files_that_are_not_objects_with_a_name_are_errors() -> None:
    data = {"name": "old", "schemaVersion": "1.4", "workflow": {"tasks": [
        {"name": "a", "parents": [], "files": [{"link": "output", "name": "x"}, {"link": "input"}]},
        {"name": "b", "parents": ["a"], "files": "x"}]}}
    with pytest.raises(WorkflowError) as exc:
        load(data)
    text = str(exc.value)
    assert "task 'a', field 'files': files[1] needs a string 'name'" in text
    assert "task 'b', field 'files': must be a list of file objects" in text


def test_recorded_numbers_that_cannot_be_used_are_noted_and_defaulted() -> None:
    data = trace(coreCount="x", memoryInBytes=-1)
    data["workflow"]["execution"]["tasks"][2]["runtimeInSeconds"] = "slow"
    w = load(data)
    m2, m3 = w.tasks[1], w.tasks[2]
    assert m2.resources.cpus == 1 and "memory_bytes" not in m2.hints and "runtime_s" not in m3.hints
    for key in ("coreCount", "memoryInBytes", "runtimeInSeconds"):
        assert f"1 task(s) recorded a {key} that is not a usable number: the default is used" in w.description
