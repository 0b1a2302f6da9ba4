"""HyperFlow workflow.json: processes become tasks, signals files or ordering, non-DAGs rejected."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from chalicelib.errors import WorkflowError
from chalicelib.workflow import formats
from chalicelib.workflow.formats import hyperflow
from chalicelib.workflow.graph import build_graph
from chalicelib.workflow.model import Placement


def proc(name: str, ins: list[Any], outs: list[Any], exe: str | None = "tool",
         args: list[Any] | None = None, **extra: Any) -> dict[str, Any]:
    p: dict[str, Any] = {"name": name, "function": "command", "type": "dataflow",
                         "firingLimit": 1, "ins": ins, "outs": outs, **extra}
    if exe is not None:
        p["config"] = {"executor": {"executable": exe, "args": args or []}}
    return p


def wf(procs: list[dict[str, Any]], signals: list[Any], **top: Any) -> dict[str, Any]:
    return {"processes": procs,
            "signals": [s if isinstance(s, dict) else {"name": s} for s in signals], **top}


def load(data: dict[str, Any]) -> Any:
    return formats.loads(json.dumps(data), source="wf.json")


def test_processes_become_tasks_with_file_signals_as_inputs_and_outputs() -> None:
    data = wf([proc("split", ["in.fits"], ["a.fits", "b.fits"], "mSplit", ["in.fits", 2]),
               proc("add", ["a.fits", "b.fits"], ["out.fits"], "/opt/bin/mAdd")],
              ["in.fits", "a.fits", "b.fits", "out.fits"], name="Demo")
    w = load(data)
    split, add = w.tasks
    assert (split.id, split.command, split.outputs) == ("split", ("mSplit", "in.fits", "2"),
                                                       ("a.fits", "b.fits"))
    assert add.inputs == ("a.fits", "b.fits") and add.type == "mAdd"
    assert split.placement is Placement.AUTO and w.name == "Demo"
    assert build_graph(w).parents["add"] == ("split",)


def test_signals_by_index_and_numeric_names_are_ordering_not_files() -> None:
    data = wf([proc("fork", [0], [1, 2], "echo", ["go"]),
               proc("left", [1], [3], "sleep", [1]),
               proc("right", [2], [4], "sleep", [2]),
               proc("join", [3, 4], [], "echo", ["done"])],
              [{"name": "0", "data": ["0"]}, 1, 2, 3, 4])
    w = load(data)
    tasks = w.task_map()
    assert all(not t.inputs and not t.outputs for t in w.tasks)
    assert tasks["join"].after == ("left", "right")
    assert build_graph(w).edge_count == 4
    assert "control tokens" in w.description


def test_a_dotless_signal_is_a_file_when_the_command_names_it() -> None:
    data = wf([proc("make", [], ["table"], "mkt", ["-o", "table"]),
               proc("use", ["table", "token"], [], "read", ["table"])],
              ["table", "token"])
    make, use = load(data).tasks
    assert make.outputs == ("table",) and use.inputs == ("table",)


def test_repeated_process_names_are_numbered_in_order() -> None:
    data = wf([proc("mProjectPP", [], [f"p{i}.fits"]) for i in range(12)]
              + [proc("mAdd", [f"p{i}.fits" for i in range(12)], ["m.fits"])],
              [f"p{i}.fits" for i in range(12)] + ["m.fits"])
    ids = [t.id for t in load(data).tasks]
    assert ids[:2] == ["mProjectPP-01", "mProjectPP-02"] and ids[11] == "mProjectPP-12"
    assert ids[12] == "mAdd"


def test_stdout_and_stderr_redirections_run_in_a_shell_and_are_outputs() -> None:
    data = wf([proc("job", ["n"], [], "./job.js", ["Hello", "big world"])], ["n"])
    data["processes"][0]["config"]["executor"].update(stdout="job.out", stderr="job.err")
    (task,) = load(data).tasks
    assert task.command == ()
    assert task.shell == "./job.js Hello 'big world' > job.out 2> job.err"
    assert task.outputs == ("job.out", "job.err")


def test_shell_true_joins_the_arguments_unquoted() -> None:
    data = wf([proc("pipe", [], [], "ls", ["-l", "|", "sort", "-r"])], [])
    data["processes"][0]["config"]["executor"]["shell"] = True
    (task,) = load(data).tasks
    assert task.shell == "ls -l | sort -r"


def test_exit_function_is_a_no_op_task() -> None:
    data = wf([proc("viewer", [], ["x.jpg"], "mViewer", ["x.jpg"]),
               {"name": "Done", "function": "exit", "type": "dataflow", "ins": ["x.jpg"],
                "outs": []}], ["x.jpg"])
    done = load(data).task_map()["Done"]
    assert done.command == ("true",) and done.inputs == ("x.jpg",) and done.type == "Done"


def test_legacy_tasks_and_data_layout() -> None:
    data = {"name": "old", "tasks": [proc("a", [], [0], "gen", ["x.dat"]),
                                     proc("b", [0], [], "use", ["x.dat"])],
            "data": [{"name": "x.dat"}]}
    assert hyperflow.sniff(data)
    a, b = load(data).tasks
    assert a.outputs == ("x.dat",) and b.inputs == ("x.dat",)


def test_absolute_signal_paths_are_mapped_and_reported() -> None:
    data = wf([proc("a", [], ["/data/x.fits"], "gen")], ["/data/x.fits"])
    w = load(data)
    assert w.tasks[0].outputs == ("_abs/data/x.fits",)
    assert "'/data/x.fits' -> '_abs/data/x.fits'" in w.description


@pytest.mark.parametrize(
    ("change", "phrases"),
    [
        (lambda d: d["processes"][0].update(type="choice"), ["'a'", "type 'choice'"]),
        (lambda d: d["processes"][1].update(ins=["x.dat:3"]), ["'b'", "'x.dat:3'", "count"]),
        (lambda d: d["signals"][0].update(control="merge"), ["control signal 'x.dat'"]),
        (lambda d: d["processes"][0].update(ins=["seed"], firingLimit=None),
         ["'a'", "3 items", "stream"]),
        (lambda d: d["processes"][1].update(outs=["x.dat"]), ["emitted by 'a', 'b'"]),
        (lambda d: d["processes"][1].pop("config"), ["'b'", "no config.executor", "'command'"]),
        (lambda d: d["processes"][1].update(ins=["nope"]), ["'b'", "unknown signal 'nope'"]),
        (lambda d: d["processes"][1].update(ins=[7]), ["'b'", "index 7 is out of range"]),
    ],
)
def test_non_dag_features_are_rejected_naming_the_process(change: Any, phrases: list[str]) -> None:
    data = wf([proc("a", [], ["x.dat"], "gen", ["x.dat"]), proc("b", ["x.dat"], [], "use")],
              ["x.dat", {"name": "seed", "data": [1, 2, 3]}])
    load(data)  # valid before the change
    change(data)
    with pytest.raises(WorkflowError) as err:
        load(data)
    for phrase in phrases:
        assert phrase in str(err.value)


def test_montage143_keeps_types_and_fan_in(shared_workflows: Path) -> None:
    w = formats.load(str(shared_workflows / "hyperflow/montage143.workflow.json"))
    types: dict[str, int] = {}
    for t in w.tasks:
        types[t.task_type] = types.get(t.task_type, 0) + 1
    assert types == {"mProjectPP": 32, "mDiffFit": 73, "mConcatFit": 1, "mBgModel": 1,
                     "mBackground": 32, "mImgtbl": 1, "mAdd": 1, "mShrink": 1, "mJPEG": 1}
    graph = build_graph(w)
    assert len(graph.parents["mConcatFit"]) == 73  # every mDiffFit
    assert "'mDiff'" in w.description  # binaries passed as signals: ordering only, said so


def test_tasks_with_signals_is_hyperflow_and_reads_the_signals() -> None:
    """HyperFlow takes `processes||tasks` and `signals||data` independently (wflib)."""
    data = {"tasks": [proc("a", ["in.txt"], ["out.txt"], "cp", ["in.txt", "out.txt"])],
            "signals": [{"name": "in.txt"}, {"name": "out.txt"}]}
    w = load(data)
    assert w.tasks[0].inputs == ("in.txt",) and w.tasks[0].outputs == ("out.txt",)
    by_index = {"processes": [proc("a", [0], [1], "cp", ["x.txt", "y.txt"])],
                "data": [{"name": "x.txt"}, {"name": "y.txt"}]}
    (t,) = load(by_index).tasks
    assert (t.inputs, t.outputs) == (("x.txt",), ("y.txt",))


def test_repeated_signal_names_are_one_signal() -> None:
    data = wf([proc("a", ["ref.fa"], ["a.out"], "align", ["ref.fa"]),
               proc("b", [1, 2], ["b.out"], "align", ["ref.fa", "a.out"])],
              ["ref.fa", "ref.fa", "a.out", "b.out"])
    w = load(data)
    a, b = w.tasks
    assert a.inputs == ("ref.fa",) and b.inputs == ("ref.fa", "a.out")
    assert "'ref.fa' x2" in w.description
    twice_made = wf([proc("a", [], ["x.txt"], "t"), proc("b", [], [1], "t")], ["x.txt", "x.txt"])
    with pytest.raises(WorkflowError, match="emitted by 'a', 'b'"):
        load(twice_made)


def test_args_as_one_string_is_a_shell_line() -> None:
    p = proc("m", ["a.txt", "b.txt"], ["c.txt"], "mAdd")
    p["config"]["executor"]["args"] = "a.txt b.txt > c.txt"
    (t,) = load(wf([p], ["a.txt", "b.txt", "c.txt"])).tasks
    assert t.shell == "mAdd a.txt b.txt > c.txt" and t.command == () and t.type == "mAdd"
