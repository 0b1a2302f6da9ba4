"""Building a CWL tool's command line from its bindings (the task-side code, no cwl-utils)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from chalicelib.cwl.errors import CwlError
from chalicelib.cwl.expr import Context
from chalicelib.cwl.tool import command_line, fill_job, run_process, tostr


def argv(tool: dict[str, Any], job: dict[str, Any], tmp_path: Path) -> list[str]:
    filled = fill_job(tool.get("inputs", []), job, str(tmp_path), str(tmp_path / "lit"))
    return [a.text for a in command_line(tool, filled, Context(filled))]


def test_positions_prefixes_and_separators(tmp_path: Path) -> None:
    tool = {
        "baseCommand": ["tool", "sub"],
        "arguments": [{"prefix": "-o", "valueFrom": "out.txt", "position": 5}, "plain"],
        "inputs": [
            {"id": "flag", "type": "boolean", "inputBinding": {"prefix": "--flag", "position": 1}},
            {"id": "off", "type": "boolean", "inputBinding": {"prefix": "--off", "position": 1}},
            {"id": "n", "type": "int", "inputBinding": {"prefix": "-n", "separate": False, "position": 2}},
            {"id": "xs", "type": {"type": "array", "items": "string"},
             "inputBinding": {"prefix": "-x", "itemSeparator": ",", "position": 3}},
            {"id": "maybe", "type": ["null", "string"], "inputBinding": {"prefix": "-m", "position": 4}},
            {"id": "unbound", "type": "string"},
        ],
    }
    job = {"flag": True, "off": False, "n": 3, "xs": ["a", "b"], "maybe": None, "unbound": "z"}
    assert argv(tool, job, tmp_path) == ["tool", "sub", "plain", "--flag", "-n3", "-x", "a,b", "-o", "out.txt"]


def test_array_items_bound_one_by_one_and_records(tmp_path: Path) -> None:
    tool = {
        "baseCommand": "echo",
        "inputs": [
            {"id": "reads", "type": {"type": "array", "items": "string", "inputBinding": {"prefix": "-Y"}},
             "inputBinding": {"prefix": "-X", "position": 1}},
            {"id": "rec", "inputBinding": {"position": 2, "prefix": "-r"}, "type": {"type": "record", "fields": [
                {"name": "b", "type": "int", "inputBinding": {"prefix": "-b", "position": 2}},
                {"name": "a", "type": "int", "inputBinding": {"prefix": "-a", "position": 1}}]}},
            {"id": "nested", "type": {"type": "array", "items": {"type": "array", "items": "string"}},
             "inputBinding": {"position": 3}},
        ],
    }
    job = {"reads": ["r1", "r2"], "rec": {"a": 1, "b": 2}, "nested": [["p"], ["q"]]}
    assert argv(tool, job, tmp_path) == ["echo", "-X", "-Y", "r1", "-Y", "r2", "-r", "-a", "1", "-b", "2", "p", "q"]


def test_defaults_files_and_type_errors(tmp_path: Path) -> None:
    (tmp_path / "in.txt").write_text("hello\n")
    tool = {"baseCommand": "cat", "inputs": [
        {"id": "f", "type": "File", "inputBinding": {}},
        {"id": "k", "type": "int", "default": 7, "inputBinding": {"prefix": "-k"}},
    ]}
    args = argv(tool, {"f": {"class": "File", "location": "in.txt"}}, tmp_path)
    assert args == ["cat", str(tmp_path / "in.txt"), "-k", "7"]
    with pytest.raises(CwlError, match="does not fit"):
        argv(tool, {"f": "not a file"}, tmp_path)
    with pytest.raises(CwlError, match="does not exist"):
        argv(tool, {"f": {"class": "File", "location": "missing.txt"}}, tmp_path)


def test_numbers_print_as_decimals() -> None:
    assert [tostr(v) for v in (0.00001, 1.23e-05, 1.23e5, 1230000, True)] == [
        "0.00001", "0.0000123", "123000", "1230000", "true"]


def test_a_tool_runs_with_streams_env_and_outputs(tmp_path: Path) -> None:
    (tmp_path / "in.txt").write_text("b\na\n")
    tool = {
        "class": "CommandLineTool", "baseCommand": "sort",
        "requirements": [{"class": "EnvVarRequirement", "envDef": [{"envName": "LC_ALL", "envValue": "C"}]}],
        "inputs": [{"id": "f", "type": "File"}],
        "stdin": "$(inputs.f.path)", "stdout": "sorted.txt",
        "outputs": [
            {"id": "out", "type": "stdout"},
            {"id": "first", "type": "string",
             "outputBinding": {"glob": "sorted.txt", "loadContents": True, "outputEval": "$(self[0].contents)"}},
            {"id": "code", "type": "int", "outputBinding": {"outputEval": "$(runtime.exitCode)"}},
        ],
    }
    result = run_process(tool, {"f": {"class": "File", "location": "in.txt"}}, str(tmp_path / "w"), str(tmp_path))
    assert result.outputs["first"] == "a\nb\n"
    assert result.outputs["code"] == 0
    assert Path(result.outputs["out"]["path"]).read_text() == "a\nb\n"


def test_failing_exit_code_unless_listed_as_success(tmp_path: Path) -> None:
    tool = {"class": "CommandLineTool", "baseCommand": ["sh", "-c", "exit 7"], "inputs": [], "outputs": []}
    with pytest.raises(CwlError, match="code 7"):
        run_process(tool, {}, str(tmp_path / "a"))
    assert run_process({**tool, "successCodes": [7]}, {}, str(tmp_path / "b")).exit_code == 7
