"""Makeflow JSON (expanded JX): rules, categories, environment; errors name rules[N]."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from chalicelib.errors import WorkflowError
from chalicelib.workflow import formats
from chalicelib.workflow.model import Placement, Workflow


def load(data: dict[str, Any]) -> Workflow:
    return formats.loads(json.dumps(data), source="flow.json")


def test_rules_categories_and_environment_layer_in_order() -> None:
    data = {
        "environment": {"A": "top", "B": "top"},
        "default_category": "base",
        "categories": {
            "base": {"resources": {"cores": 1, "memory": 512}, "environment": {"B": "base"}},
            "big": {"resources": {"cores": 8, "disk": 4000, "wall-time": 600},
                    "environment": {"C": "big"}},
        },
        "rules": [
            {"command": "prep > x", "outputs": ["x"], "local_job": True},
            {"command": "crunch x > y", "inputs": ["x"], "outputs": ["y"], "category": "big",
             "resources": {"memory": 9000}, "environment": {"A": "rule"}},
        ],
    }
    prep, crunch = load(data).tasks
    assert prep.placement is Placement.LOCAL and prep.shell == "prep > x"
    assert (prep.resources.cpus, prep.resources.memory_mb) == (1, 512)
    one = {"CORES": "1", "OMP_NUM_THREADS": "1"}  # Makeflow's defaults
    assert prep.env == {"A": "top", "B": "base", **one} and prep.type == "base"
    assert crunch.placement is Placement.AUTO and crunch.type == "big"
    assert (crunch.resources.cpus, crunch.resources.memory_mb, crunch.resources.disk_mb,
            crunch.resources.timeout_s) == (8, 9000, 4000, 600)
    assert crunch.env == {"A": "rule", "B": "base", "C": "big", **one}


def test_object_files_and_dot_slash_names() -> None:
    data = {"rules": [{"command": "./tool", "inputs": [{"name": "./tool"}, {"dag_name": "d"}],
                       "outputs": [{"dag_name": "o", "task_name": "o"}]}]}
    (t,) = load(data).tasks
    assert t.inputs == ("tool", "d") and t.outputs == ("o",)


def test_known_misspellings_are_read_as_meant_and_said() -> None:
    data = {"rules": [{"command": "make o", "output": ["o"], "local job": True, "colour": 1}]}
    w = load(data)
    assert w.tasks[0].outputs == ("o",) and w.tasks[0].placement is Placement.LOCAL
    assert "read 'output' as 'outputs'" in w.description
    assert "ignored unknown key 'colour' in rules[0]" in w.description


def test_a_rule_that_makes_nothing_is_named_by_its_position() -> None:
    w = load({"rules": [{"command": "echo hi"}, {"command": "echo bye"}]})
    assert [t.id for t in w.tasks] == ["rule-1", "rule-2"]


@pytest.mark.parametrize(
    ("rule", "phrases"),
    [
        ({"workflow": "sub.json", "args": {}}, ["rules[1]", "nested workflow", "sub.json"]),
        ({"workflow": "sub.json", "command": "c"}, ["rules[1]", "not both"]),
        ({"outputs": ["z"]}, ["rules[1]", "needs a 'command'"]),
        ({"command": "c", "inputs": [{"dag_name": "a", "task_name": "/b"}]},
         ["rules[1]", "remote name '/b'", "relative path"]),
        ({"command": "c", "outputs": ["x"]}, ["rules[1]", "'x' is also made by the rule at rules[0]"]),
        ({"command": "c", "resources": {"cores": "many"}}, ["rules[1]", "resources.cores"]),
        ({"command": "c", "environment": {"A": ["x"]}}, ["rules[1]", "environment 'A'"]),
    ],
)
def test_errors_name_the_rule(rule: dict[str, Any], phrases: list[str]) -> None:
    data = {"rules": [{"command": "make x", "outputs": ["x"]}, rule]}
    with pytest.raises(WorkflowError) as err:
        load(data)
    for phrase in phrases:
        assert phrase in str(err.value)


MF = "makeflow/makeflow-examples"


def _shape(w: Workflow) -> dict[str, tuple[Any, ...]]:
    return {t.id: (t.shell, t.inputs, t.outputs, t.placement, t.type) for t in w.tasks}


@pytest.mark.parametrize("stem", ["blast/blast", "bwa/bwa", "ssaha/ssaha",
                                  "shakespeare/shakespeare"])
def test_jx_evaluates_to_what_makeflow_expanded(shared_workflows: Path, stem: str) -> None:
    jx = formats.load(str(shared_workflows / MF / f"{stem}.jx"))
    expanded = formats.load(str(shared_workflows / MF / f"{stem}.json"))
    assert _shape(jx) == _shape(expanded)


def test_hecil_jx_matches_its_expansion_up_to_one_space(shared_workflows: Path) -> None:
    jx = _shape(formats.load(str(shared_workflows / MF / "hecil/hecil.jx")))
    expanded = _shape(formats.load(str(shared_workflows / MF / "hecil/hecil.json")))
    differ = [k for k in jx if jx[k] != expanded[k]]
    assert set(jx) == set(expanded) and differ == ["Out.bam"]  # "2>sort.err" vs "2> sort.err"
