"""The native format's `publish` field: its shapes, its problems (named with task and field, in
the reader and the schema alike), what it selects, and that it survives a dump and a re-read
(a resumed run publishes from its stored spec)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import jsonschema
import pytest

from chalicelib.errors import WorkflowError
from chalicelib.workflow.formats import loads, native
from chalicelib.workflow.model import PublishRule
from chalicelib.workflow.publish_rules import final_outputs, selection
from chalicelib.workflow.validate import validate

SCHEMA = json.loads((Path(native.__file__).parents[1] / "workflow.schema.json").read_text())


def wf(publish: Any = None, task_publish: Any = None) -> dict[str, Any]:
    a: dict[str, Any] = {"id": "a", "shell": "x", "outputs": ["tmp/part.txt", "counts/a.tsv", "db/"]}
    if task_publish is not None:
        a["publish"] = task_publish
    doc: dict[str, Any] = {"tasks": [a, {"id": "b", "shell": "y", "inputs": ["tmp/part.txt"],
                                         "outputs": ["final.txt"]}]}
    if publish is not None:
        doc["publish"] = publish
    return doc


def test_the_three_shapes_read_as_rules_and_round_trip() -> None:
    for raw, rules in [("results", (PublishRule("results"),)),
                       ({"to": "r", "outputs": ["*.txt"]}, (PublishRule("r", ("*.txt",)),)),
                       ([{"to": "r"}, {"to": "s", "outputs": ["*.txt"]}],
                        (PublishRule("r"), PublishRule("s", ("*.txt",))))]:
        doc = wf(publish=raw, task_publish=raw)
        jsonschema.validate(doc, SCHEMA)
        w = validate(native.from_data(doc))
        assert w.publish == rules and w.tasks[0].publish == rules
        again = loads(native.dump(w))
        assert again.publish == w.publish and again.tasks == w.tasks
        jsonschema.validate(json.loads(native.dump(w)), SCHEMA)


@pytest.mark.parametrize(("publish", "task_publish", "field", "needle"), [
    (5, None, "publish", "must be a folder name"),
    ([], None, "publish", "must be a folder name"),
    ({"outputs": ["*"]}, None, "publish.to", "'to' must name a folder"),
    ({"to": "r", "mode": "link"}, None, "publish", "unknown field(s) ['mode']"),
    ({"to": "r", "outputs": "*.txt"}, None, "publish.outputs", "must be a list of strings"),
    (None, {"to": ""}, "publish.to", "'to' must name a folder"),
])
def test_a_bad_shape_is_named_by_field_in_the_reader_and_the_schema(publish: Any, task_publish: Any, field: str,
                                                                    needle: str) -> None:
    doc = wf(publish, task_publish)
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(doc, SCHEMA)
    with pytest.raises(WorkflowError) as err:
        native.from_data(doc)
    assert any(p.field == field and needle in p.message for p in err.value.problems), err.value


def test_a_pattern_that_matches_no_output_is_a_problem_naming_the_outputs() -> None:
    with pytest.raises(WorkflowError) as err:
        validate(native.from_data(wf(task_publish={"to": "r", "outputs": ["*.csv"]})))
    (problem,) = err.value.problems
    assert (problem.task_id, problem.field) == ("a", "publish.outputs")
    assert "'*.csv' matches none of the task's outputs (tmp/part.txt, counts/a.tsv, db)" in problem.message
    with pytest.raises(WorkflowError, match="matches none of any task's outputs"):
        validate(native.from_data(wf(publish=[{"to": "r"}, {"to": "s", "outputs": ["nope"]}])))


def test_a_task_without_outputs_cannot_publish() -> None:
    doc = {"tasks": [{"id": "a", "shell": "true", "publish": "r"}]}
    with pytest.raises(WorkflowError, match="declares no outputs to publish"):
        validate(native.from_data(doc))


def test_what_the_rules_select() -> None:
    w = native.from_data(wf())
    assert final_outputs(w) == ["counts/a.tsv", "db", "final.txt"]  # tmp/part.txt is read by b
    assert selection(w) == []  # no rule, no --outdir: nothing
    assert selection(w, ".") == [(".", "counts/a.tsv"), (".", "db"), (".", "final.txt")]
    w = native.from_data(wf(publish="results", task_publish={"to": "t", "outputs": ["*.t*", "db/"]}))
    assert selection(w, ".") == [("results", "counts/a.tsv"), ("results", "db"), ("results", "final.txt"),
                                 ("t", "tmp/part.txt"), ("t", "counts/a.tsv"), ("t", "db")]
