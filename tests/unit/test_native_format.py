from __future__ import annotations

import json
from pathlib import Path

import jsonschema
import pytest

from chalicelib.errors import WorkflowError
from chalicelib.workflow.formats import loads, native
from chalicelib.workflow.graph import build_graph

SCHEMA = json.loads((Path(native.__file__).parents[1] / "workflow.schema.json").read_text())

FULL = {
    "format": "updraft/v1", "name": "full", "description": "every field",
    "defaults": {"resources": {"memory_mb": 512, "timeout_s": 60}, "placement": "auto", "retries": 1,
                 "env": {"A": "1"}},
    "inputs": ["raw/a.txt", {"path": "ref/db.fa", "source": "s3://bucket/db.fa"}],
    "tasks": [
        {"id": "t1", "command": ["tool", "raw/a.txt"], "inputs": ["raw/a.txt", "ref/db.fa"], "outputs": ["o/x"],
         "resources": {"cpus": 2}, "env": {"B": "2"}, "type": "tool", "hints": {"runtime_s": 3.5}},
        {"id": "t2", "shell": "wc -l o/x > n", "inputs": ["o/x"], "outputs": ["n"], "after": ["t1"],
         "placement": "container", "retries": 0},
    ],
}


def test_schema_accepts_a_full_workflow_and_reader_agrees() -> None:
    jsonschema.validate(FULL, SCHEMA)
    wf = native.from_data(FULL)
    t1, t2 = wf.tasks
    assert t1.resources.memory_mb == 512 and t1.resources.cpus == 2 and t1.resources.timeout_s == 60
    assert dict(t1.env) == {"A": "1", "B": "2"} and t1.retries == 1 and t1.placement.value == "auto"
    assert t2.shell == "wc -l o/x > n" and t2.placement.value == "container" and t2.retries == 0
    assert wf.inputs[1].source == "s3://bucket/db.fa"


def test_dump_then_load_gives_the_same_tasks_and_edges() -> None:
    wf = native.from_data(FULL)
    again = loads(native.dump(wf))
    assert again.tasks == wf.tasks and again.inputs == wf.inputs
    assert build_graph(again).parents == build_graph(wf).parents
    jsonschema.validate(json.loads(native.dump(wf)), SCHEMA)


@pytest.mark.parametrize("bad", [
    {"tasks": [{"id": "a", "command": "true"}]},
    {"tasks": [{"id": "a", "command": ["true"], "colour": "red"}]},
    {"tasks": [{"id": "a", "command": ["true"], "placement": "moon"}]},
    {"tasks": [{"id": "a", "command": ["true"], "resources": {"memory_mb": "1G"}}]},
])
def test_reader_and_schema_both_reject(bad: dict) -> None:
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(bad, SCHEMA)
    with pytest.raises(WorkflowError):
        native.from_data(bad)


def test_invalid_json_names_line_and_column() -> None:
    with pytest.raises(WorkflowError, match="invalid JSON at line 2 column"):
        loads('{"tasks": [\n  {"id": }]}', source="x.json")


def test_a_native_file_loads_without_the_importers(tmp_path: Path) -> None:
    """Start-up: reading a plain native file imports none of the other formats' readers."""
    import subprocess
    import sys

    wf = tmp_path / "wf.json"
    wf.write_text(json.dumps({"name": "n", "tasks": [{"id": "a", "command": ["true"]}]}))
    probe = (
        "import sys; from chalicelib.workflow.formats import load; w = load(sys.argv[1]); "
        "print(len(w.tasks), sorted(m for m in sys.modules if m.startswith('chalicelib.workflow.formats.')))"
    )
    out = subprocess.run([sys.executable, "-c", probe, str(wf)], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "1 ['chalicelib.workflow.formats.native']"


@pytest.mark.parametrize("doc", [
    {"tasks": [{"id": "a", "ins": [0], "outs": [1]}], "data": [{"name": "x"}, {"name": "y"}]},  # legacy HyperFlow
    {"processes": [], "signals": [], "tasks": []},  # HyperFlow
    {"workflow": {"tasks": []}, "tasks": []},  # WfCommons
    {"rules": [], "tasks": []},  # Makeflow JX
])
def test_the_fast_path_leaves_other_formats_to_detection(doc: dict) -> None:
    from chalicelib.workflow.formats import _plainly_native
    from chalicelib.workflow.formats.registry import detect

    assert _plainly_native(doc) is False
    assert detect(json.dumps(doc)) != native.NAME
    assert _plainly_native({"tasks": []}) is True


def test_a_trailing_slash_declares_a_folder_and_survives_a_round_trip() -> None:
    from chalicelib.workflow.formats.native import from_data, to_data

    w = from_data({"tasks": [{"id": "a", "shell": "true", "inputs": ["refs/", "x"], "outputs": ["db/", "y"]}]})
    task = w.tasks[0]
    assert task.inputs == ("refs", "x") and task.outputs == ("db", "y") and task.folders == ("refs", "db")
    again = to_data(w)["tasks"][0]
    assert again["inputs"] == ["refs/", "x"] and again["outputs"] == ["db/", "y"]
    assert from_data(to_data(w)).tasks[0] == task
