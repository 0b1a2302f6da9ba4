"""Replay: same graph and types, sleeps scaled runtimes, writes scaled sizes, quick by default."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from chalicelib.errors import ConfigError
from chalicelib.runner import replay_task
from chalicelib.workflow import formats
from chalicelib.workflow.graph import build_graph, topological_order
from chalicelib.workflow.model import Placement, Resources, Task, Workflow
from chalicelib.workflow.replay import (
    DEFAULT_SIZE_BYTES,
    INPUTS_TASK,
    MODULE,
    TARGET_BYTES,
    TARGET_SECONDS,
    choose_scales,
    to_replay,
)
from chalicelib.workflow.validate import validate

TRACES = ["1000genome-chameleon-8ch-250k-001.json", "blast-chameleon-small-001.json",
          "epigenomics-chameleon-hep-2seq-50k-001.json", "montage-chameleon-2mass-01d-001.json",
          "montage-chameleon-dss-125d-001.json.gz", "srasearch-chameleon-10a-001.json"]


def small() -> Workflow:
    return Workflow("small", (
        Task("a", shell="make x", inputs=("raw.dat",), outputs=("x",),
             hints={"runtime_s": 10.0, "size:x": 1000.0, "size:raw.dat": 50.0},
             placement=Placement.LOCAL, env={"K": "V"}),
        Task("b", command=("/opt/tool", "x"), inputs=("x",), outputs=("y", "z"),
             hints={"size:y": 10.0}, resources=Resources(memory_mb=64)),
        Task("c", command=("true",), after=("b",)),
    ))


def _argv_writes(task: Task) -> list[tuple[int, str]]:
    argv = list(task.command)
    out = []
    for i, arg in enumerate(argv):
        if arg == "--write":
            out.append((int(argv[i + 1]), argv[i + 2]))
    return out


def _sleep(task: Task) -> float:
    argv = list(task.command)
    return float(argv[argv.index("--sleep") + 1])


def test_replay_keeps_ids_files_edges_placement_and_types() -> None:
    original = small()
    r = to_replay(original, time_scale=0.5, size_scale=0.1)
    validate(r)
    assert [t.id for t in r.tasks] == [INPUTS_TASK, "a", "b", "c"]
    tasks = r.task_map()
    for t in original.tasks:
        rt = tasks[t.id]
        assert (rt.inputs, rt.outputs, rt.after, rt.placement) == (t.inputs, t.outputs, t.after,
                                                                   t.placement)
        assert rt.type == t.task_type and rt.shell is None and rt.env == {}
        assert rt.command[0] == sys.executable
    assert (tasks["a"].type, tasks["b"].type, tasks["c"].type) == ("make", "tool", "true")
    edges = build_graph(r).parents
    assert edges["a"] == (INPUTS_TASK,) and edges["b"] == ("a",) and edges["c"] == ("b",)


def test_sleeps_and_sizes_are_scaled_with_defaults_where_nothing_was_recorded() -> None:
    r = to_replay(small(), time_scale=0.5, size_scale=0.1, default_runtime_s=2.0).task_map()
    assert _sleep(r["a"]) == 5.0 and _sleep(r["b"]) == 1.0
    assert _argv_writes(r["a"]) == [(100, "x")]
    assert _argv_writes(r["b"]) == [(1, "y"), (DEFAULT_SIZE_BYTES, "z")]
    assert _argv_writes(r[INPUTS_TASK]) == [(5, "raw.dat")]
    assert r[INPUTS_TASK].type == "replay-inputs"
    assert r["b"].resources.memory_mb >= 128  # the stand-in itself needs some memory


def test_auto_scales_aim_for_a_few_seconds_and_a_few_megabytes(shared_workflows: Path) -> None:
    for name in TRACES:
        wf = formats.load(str(shared_workflows / "wfcommons" / name))
        scales = choose_scales(wf)
        assert 0 < scales.time_scale < 1 and 0 < scales.size_scale < 1
        assert scales.estimated_s == pytest.approx(TARGET_SECONDS)
        assert scales.recorded_bytes * scales.size_scale == pytest.approx(TARGET_BYTES)


def test_given_scales_are_used_and_bad_ones_refused() -> None:
    assert choose_scales(small(), 2.0, 3.0).time_scale == 2.0
    with pytest.raises(ConfigError, match="--time-scale"):
        to_replay(small(), time_scale=-1)
    with pytest.raises(ConfigError, match="launcher"):
        to_replay(small(), launcher="rocket")


def test_module_launcher_names_the_module() -> None:
    r = to_replay(small(), launcher="module", python="python3").task_map()
    assert r["a"].command[:3] == ("python3", "-m", MODULE)


def _run_in_order(wf: Workflow, folder: Path) -> list[str]:
    graph = build_graph(wf)
    order = topological_order(graph)
    assert order is not None
    tasks = wf.task_map()
    for tid in order:
        for path in tasks[tid].inputs:
            assert (folder / path).is_file(), f"{tid} runs before its input {path} exists"
        subprocess.run(tasks[tid].command, cwd=folder, check=True, timeout=60)
    return order


@pytest.mark.parametrize("name", ["srasearch-chameleon-10a-001.json",
                                  "blast-chameleon-small-001.json"])
def test_replayed_commands_write_recorded_sizes_in_order(
        shared_workflows: Path, tmp_path: Path, name: str) -> None:
    wf = formats.load(str(shared_workflows / "wfcommons" / name))
    size_scale = 1e-4
    r = to_replay(wf, time_scale=0.0001, size_scale=size_scale)
    started = time.monotonic()
    _run_in_order(r, tmp_path)
    assert time.monotonic() - started < 30
    for task in wf.tasks:
        for out in task.outputs:
            expected = round(task.hints[f"size:{out}"] * size_scale)
            assert os.path.getsize(tmp_path / out) == expected


def test_hyperflow_and_makeflow_replay_with_default_sizes(tmp_path: Path) -> None:
    text = "b.out: a.in\n\tLOCAL missing-tool a.in > b.out\nc.out: b.out\n\tother b.out\n"
    wf = formats.loads(text, source="flow.mf")
    r = to_replay(wf, default_runtime_s=0.01)
    _run_in_order(r, tmp_path)
    assert (tmp_path / "c.out").stat().st_size == DEFAULT_SIZE_BYTES


def test_replay_task_sleeps_then_writes_its_path_repeated(tmp_path: Path) -> None:
    started = time.monotonic()
    assert replay_task.main(["--sleep", "0.05", "--write", "10", str(tmp_path / "d/x"),
                             "--write", "0", str(tmp_path / "e")]) == 0
    assert time.monotonic() - started >= 0.05
    data = (tmp_path / "d/x").read_bytes()
    assert len(data) == 10 and data == (str(tmp_path / "d/x") + "\n").encode()[:10]
    assert (tmp_path / "e").read_bytes() == b""


def test_replay_task_writes_large_files_exactly(tmp_path: Path) -> None:
    replay_task.write_file(str(tmp_path / "big"), 3 * replay_task.CHUNK + 7)
    assert (tmp_path / "big").stat().st_size == 3 * replay_task.CHUNK + 7


@pytest.mark.parametrize("argv", [["--sleep"], ["--write", "x", "p"], ["--bogus"],
                                  ["--sleep", "-1"], ["--write", "5"]])
def test_replay_task_usage_errors_exit_2(argv: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    assert replay_task.main(argv) == 2
    assert "usage:" in capsys.readouterr().err


def test_replay_task_file_runs_without_site_packages(tmp_path: Path) -> None:
    r = to_replay(small(), time_scale=0, size_scale=1).task_map()
    proc = subprocess.run(r[INPUTS_TASK].command, cwd=tmp_path, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    assert "-S" in r[INPUTS_TASK].command and (tmp_path / "raw.dat").stat().st_size == 50
