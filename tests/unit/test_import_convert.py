"""`convert --to native`: every importable shared file round-trips to the same tasks and edges."""

from __future__ import annotations

from pathlib import Path

import pytest

from chalicelib.errors import FormatError, WorkflowError
from chalicelib.workflow import formats
from chalicelib.workflow.convert import convert, convert_workflow
from chalicelib.workflow.formats.registry import detect
from chalicelib.workflow.graph import build_graph
from chalicelib.workflow.model import Task, Workflow

IMPORTABLE = [
    "hyperflow/montage143.workflow.json",
    "hyperflow/remote-jobs.workflow.json",
    "hyperflow/parallel-sleep3.workflow.json",
    "makeflow/makeflow-examples/blast/blast.mf",
    "makeflow/makeflow-examples/snpexp/snpexp.mf",
    "makeflow/makeflow-examples/shakespeare/shakespeare.mf",
    "makeflow/makeflow-examples/bwa/bwa.json",
    "makeflow/makeflow-examples/bwa-gatk/bwa-gatk.jx",
    "makeflow/wfcommons-makeflow-instances/blast/blast-chameleon-small-001.json",
    "wfcommons/montage-chameleon-dss-125d-001.json.gz",
    "wfcommons/epigenomics-chameleon-hep-2seq-50k-001.json",
]


def _edges(w: Workflow) -> set[tuple[str, str]]:
    graph = build_graph(w)
    return {(p, c) for c, parents in graph.parents.items() for p in parents}


def _fields(t: Task) -> tuple[object, ...]:
    return (t.id, t.command, t.shell, t.inputs, t.outputs, t.after, t.resources, t.placement,
            dict(t.env), t.type, dict(t.hints), t.retries)


@pytest.mark.parametrize("rel", IMPORTABLE)
def test_native_output_reads_back_to_the_same_workflow(shared_workflows: Path, rel: str) -> None:
    path = str(shared_workflows / rel)
    original = formats.load(path)
    text = convert(path, to="native")
    assert detect(text) == "native"
    again = formats.loads(text, source="converted.json")
    assert [_fields(t) for t in again.tasks] == [_fields(t) for t in original.tasks]
    assert _edges(again) == _edges(original)
    assert again.description == original.description and again.name == original.name
    assert convert_workflow(again) == text  # a fixed point


def test_unknown_target_format_is_refused() -> None:
    w = Workflow("w", (Task("a", command=("true",)),))
    with pytest.raises(FormatError, match="can write: native"):
        convert_workflow(w, to="cwl")


def test_an_invalid_workflow_is_not_written(tmp_path: Path) -> None:
    bad = tmp_path / "cycle.mf"
    bad.write_text("a: b\n\tmake a\nb: a\n\tmake b\n")
    with pytest.raises(WorkflowError, match="dependency cycle"):
        convert(str(bad))


def test_format_flag_overrides_detection(tmp_path: Path) -> None:
    flow = tmp_path / "flow.txt"
    flow.write_text("out: in\n\tcat in > out\n")
    assert '"shell": "cat in > out"' in convert(str(flow), fmt="makeflow")
    with pytest.raises(WorkflowError):
        convert(str(flow), fmt="hyperflow")
