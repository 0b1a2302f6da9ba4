"""scripts/bench-peers: the workloads match bench-overhead's, and every peer's program encodes the
same DAG (same edges) as Updraft's reading of the workflow. No peer needs to be installed."""

from __future__ import annotations

import functools
import importlib.machinery
import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

from chalicelib.workflow.formats import loads
from chalicelib.workflow.graph import build_graph
from examples.blast import dag as blast_dag
from examples.montage import dag as montage_dag
from examples.montage import sky

REPO = Path(__file__).resolve().parents[2]
SCRIPTS = REPO / "scripts"
PEERS = SCRIPTS / "peers"
for p in (str(SCRIPTS), str(PEERS)):
    if p not in sys.path:
        sys.path.insert(0, p)

import dask_program  # noqa: E402
import parsl_program  # noqa: E402
import task_exec  # noqa: E402
from peers import makeflow_writer, measure, report, snakemake_writer, translate, workloads  # noqa: E402


def load_script(path: Path, name: str) -> ModuleType:
    loader = importlib.machinery.SourceFileLoader(name, str(path))
    spec = importlib.util.spec_from_loader(name, loader)
    assert spec is not None
    module = importlib.util.module_from_spec(spec)
    loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def overhead() -> ModuleType:
    return load_script(SCRIPTS / "bench-overhead", "bench_overhead")


@functools.cache
def montage_doc() -> dict[str, Any]:
    s = sky.make_sky(0.5, 275.196, -16.171, seed=1)
    cells = {(t.row, t.col): f"{t.name}.fits" for t in s.tiles}
    pairs = sorted({tuple(sorted((n, o))) for (r, c), n in cells.items()
                    for dr, dc in ((0, 1), (1, -1), (1, 0), (1, 1)) if (o := cells.get((r + dr, c + dc)))})
    return montage_dag.build(s, pairs)  # type: ignore[arg-type]


@functools.cache
def docs() -> dict[str, dict[str, Any]]:
    return {
        "fan": {"tasks": workloads.fan(50)},
        "chain": {"tasks": workloads.chain(40)},
        "layered": {"tasks": workloads.layered(20, 100)},
        "blast": blast_dag.build("blast", 8),
        "montage": montage_doc(),
    }


def updraft_edges(doc: dict[str, Any]) -> set[tuple[str, str]]:
    key = json.dumps(doc, sort_keys=True)
    if key not in _EDGES:
        _EDGES[key] = _updraft_edges(doc)
    return _EDGES[key]


_EDGES: dict[str, set[tuple[str, str]]] = {}


def _updraft_edges(doc: dict[str, Any]) -> set[tuple[str, str]]:
    graph = build_graph(loads(json.dumps({"format": "updraft/v1", "name": "x", **doc})))
    return {(p, c) for c, ps in graph.parents.items() for p in ps}


def edges_from_files(rules: list[tuple[str, list[str], list[str]]]) -> set[tuple[str, str]]:
    """(task, inputs, outputs) -> producer -> consumer edges, the way file-driven engines see them."""
    producer = {o: tid for tid, _, outs in rules for o in outs}
    return {(producer[i], tid) for tid, ins, _ in rules for i in ins if i in producer}


# -- workloads ----------------------------------------------------------------------------------

def test_synthetic_generators_are_bench_overheads(overhead: ModuleType) -> None:
    assert workloads.fan(2000) == overhead.fan(2000)
    assert workloads.chain(300) == overhead.chain(300)
    assert workloads.layered(20, 100) == overhead.layered(20, 100)
    for tasks in (workloads.fan(2000), workloads.chain(300), workloads.layered(20, 100)):
        assert workloads.floor_cmd(tasks, 2) == overhead.floor_cmd(tasks, 2)


def test_full_workloads_have_the_issues_sizes() -> None:
    sizes = {w.name: (w.tasks, workloads.level_sizes(w.doc["tasks"])) for w in workloads.synthetic_workloads(False)}
    assert sizes["fan-2000"] == (2000, [2000])
    assert sizes["chain-300"] == (300, [1] * 300)
    assert sizes["dag-20x100"] == (2000, [100] * 20)
    dag = workloads.synthetic_workloads(False)[2].doc["tasks"]
    assert all(len(t["after"]) == 3 for t in dag[100:])


def test_floor_runs_the_same_number_of_commands() -> None:
    tasks = workloads.layered(4, 30)
    script = workloads.floor_cmd(tasks, 2)[2].replace("-I{} true", "-I{} echo x")
    out = subprocess.run(["/bin/sh", "-c", script], capture_output=True, text=True, check=True).stdout
    assert out.count("x") == 120


# -- translation --------------------------------------------------------------------------------

@pytest.mark.parametrize("name", ["fan", "chain", "layered", "blast", "montage"])
def test_translation_keeps_updrafts_edges_in_a_topological_order(name: str) -> None:
    doc = docs()[name]
    tasks = translate.translate(doc)
    assert translate.edges(tasks) == updraft_edges(doc)
    assert sorted(t.id for t in tasks) == sorted(t["id"] for t in doc["tasks"])
    position = {t.id: i for i, t in enumerate(tasks)}
    assert all(position[p] < position[c] for p, c in translate.edges(tasks))


def test_order_is_repaired_and_cycles_are_refused() -> None:
    tasks = translate.translate({"tasks": list(reversed(workloads.chain(5)))})
    assert [t.id for t in tasks] == ["t0", "t1", "t2", "t3", "t4"]
    with pytest.raises(ValueError, match="cycle"):
        translate.translate({"tasks": [{"id": "a", "command": ["true"], "after": ["b"]},
                                       {"id": "b", "command": ["true"], "after": ["a"]}]})


def test_tasks_without_outputs_get_a_marker_and_exec_their_program() -> None:
    tasks = {t.id: t for t in translate.translate({"tasks": workloads.chain(3)})}
    assert tasks["t1"].line == "exec true > .peers/done/t1"
    assert tasks["t1"].inputs == (".peers/done/t0",)
    assert tasks["t1"].outputs == (".peers/done/t1",)
    assert tasks["t1"].argv == ("true",)
    blast = {t.id: t for t in translate.translate(blast_dag.build("b", 2))}
    assert blast["merge"].line.startswith("exec python3 tools/merge_hits.py")
    assert not any(".peers" in o for o in blast["merge"].outputs)


def test_a_task_that_reads_its_folder_sees_only_its_declared_inputs(tmp_path: Path) -> None:
    for path in ("a/x.fits", "a/y.fits", "raw/z.fits", "other.txt"):
        (tmp_path / path).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / path).write_text(path)
    lister = "import os; open('list.txt', 'w').write(' '.join(sorted(os.listdir('a'))) + ' ' + str(os.listdir('.')))"
    doc = {"tasks": [{"id": "tbl", "command": ["python3", "-c", lister, "."], "inputs": ["a/x.fits"],
                      "outputs": ["list.txt"]}]}
    (task,) = translate.translate(doc)
    assert task.argv is None and task.script is not None
    subprocess.run(["/bin/sh", "-c", task.line], cwd=tmp_path, check=True)
    listed = (tmp_path / "list.txt").read_text()
    assert listed.startswith("x.fits ")
    assert "raw" not in listed and "other.txt" not in listed


def test_montage_table_tasks_are_isolated_and_the_others_are_not() -> None:
    tasks = translate.translate(montage_doc())
    isolated = sorted(t.id for t in tasks if t.script is not None)
    assert isolated == ["imgtbl-corrected", "imgtbl-projected"]


# -- the peers' programs ------------------------------------------------------------------------

@pytest.mark.parametrize("name", ["fan", "chain", "layered", "blast", "montage"])
def test_makeflow_file_encodes_the_same_dag(name: str) -> None:
    doc = docs()[name]
    tasks = translate.translate(doc)
    rules = makeflow_writer.parse(makeflow_writer.render(tasks))
    assert len(rules) == len(tasks)
    by_outputs = {tuple(outs): t.id for t, (outs, _, _) in zip(tasks, rules, strict=True)}
    named = [(by_outputs[tuple(outs)], ins, outs) for outs, ins, _ in rules]
    assert edges_from_files(named) == updraft_edges(doc)
    assert [cmd for _, _, cmd in rules] == [t.line for t in tasks]


def test_makeflow_refuses_what_it_would_misread() -> None:
    with pytest.raises(ValueError, match="expand"):
        makeflow_writer.render(translate.translate({"tasks": [{"id": "a", "shell": "echo $HOME > o",
                                                               "outputs": ["o"]}]}))


@pytest.mark.parametrize("wildcard", [True, False])
@pytest.mark.parametrize("name", ["fan", "chain", "layered", "blast", "montage"])
def test_snakefile_encodes_the_same_dag(name: str, wildcard: bool) -> None:
    doc = docs()[name]
    tasks = translate.translate(doc)
    text = snakemake_writer.render(tasks, wildcard)
    rules = snakemake_writer.parse(text)
    assert rules[0]["name"] == "all"
    assert sorted(rules[0]["input"]) == sorted(o for t in tasks for o in t.outputs)
    assert len(rules) == len(tasks) + 1
    named = [(str(r["id"]), list(r["input"]), list(r["output"])) for r in rules[1:]]
    assert edges_from_files(named) == updraft_edges(doc)
    shells = {str(r["id"]): r["shell"] for r in rules[1:]}
    assert shells == {t.id: t.line for t in tasks}
    assert ("rule marker_task:" in text) == (wildcard and name in ("fan", "chain", "layered"))


def test_snakefile_doubles_braces_so_snakemake_formats_them_back() -> None:
    tasks = translate.translate({"tasks": [{"id": "a", "shell": "awk '{print $1}' i > o", "inputs": ["i"],
                                            "outputs": ["o"]}]})
    (rule,) = snakemake_writer.parse(snakemake_writer.render(tasks))[1:]
    assert rule["shell"] == "awk '{{print $1}}' i > o"


class Recorder:
    """Stands in for parsl.python_app(fn) and dask.delayed(fn): records each call's task and parents."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, tuple[str, ...] | None, str | None, tuple[str, ...]]] = []

    def __call__(self, task_id: str, argv: list[str] | None, script: str | None, *parents: str,
                 **kw: Any) -> str:
        if "dask_key_name" in kw:
            assert kw["dask_key_name"] == task_id
        self.calls.append((task_id, tuple(argv) if argv is not None else None, script, parents))
        return task_id  # the "future": parents come back as these


def tasks_json(tasks: list[translate.PeerTask], tmp_path: Path) -> list[dict[str, Any]]:
    from peers.engines import tasks_file

    tasks_file(tasks, tmp_path / "tasks.json")
    return task_exec.load_tasks(str(tmp_path / "tasks.json"))


@pytest.mark.parametrize("name", ["chain", "layered", "blast", "montage"])
def test_parsl_program_encodes_the_same_dag(name: str, tmp_path: Path) -> None:
    doc = docs()[name]
    tasks = translate.translate(doc)
    app = Recorder()
    futures = parsl_program.submit(tasks_json(tasks, tmp_path), app)
    assert set(futures) == {t["id"] for t in doc["tasks"]}
    assert {(p, tid) for tid, _, _, parents in app.calls for p in parents} == updraft_edges(doc)
    argv = {t.id: t.argv for t in tasks}
    assert all(a == argv[tid] for tid, a, _, _ in app.calls)


@pytest.mark.parametrize("name", ["chain", "layered", "blast", "montage"])
def test_dask_program_encodes_the_same_dag(name: str, tmp_path: Path) -> None:
    doc = docs()[name]
    tasks = translate.translate(doc)
    app = Recorder()

    def delayed(fn: Any, pure: bool) -> Recorder:
        assert fn is task_exec.run_task and pure is False
        return app

    nodes = dask_program.build(tasks_json(tasks, tmp_path), delayed)
    assert set(nodes) == {t["id"] for t in doc["tasks"]}
    assert {(p, tid) for tid, _, _, parents in app.calls for p in parents} == updraft_edges(doc)


def test_run_task_fails_on_a_non_zero_exit_with_the_tasks_id(tmp_path: Path) -> None:
    assert task_exec.run_task("ok", ["true"], None) == "ok"
    assert task_exec.run_task("sh", None, f"echo hi > {tmp_path}/o") == "sh"
    assert (tmp_path / "o").read_text() == "hi\n"
    with pytest.raises(RuntimeError, match="task bad exited 3: oops"):
        task_exec.run_task("bad", None, "echo oops >&2; exit 3")


# -- measurement and report ---------------------------------------------------------------------

def test_measure_counts_the_engine_and_leaves_out_the_tasks(tmp_path: Path) -> None:
    engine = ("import subprocess, sys\n"
              "held = bytearray(80 * 2**20)\n"
              "subprocess.run(['python3', 'tools/big.py'], check=True)\n")
    (tmp_path / "tools").mkdir()
    (tmp_path / "tools" / "big.py").write_text("import time\nx = bytearray(200 * 2**20)\ntime.sleep(0.4)\n")
    m = measure.run([sys.executable, "-c", engine], tmp_path, dict(os.environ), timeout_s=30, interval_s=0.02)
    assert m.returncode == 0 and not m.timed_out
    assert 80 <= m.peak_rss_mb < 200
    assert m.peak_pss_mb < 200
    assert m.wall_s >= 0.4


def test_measure_kills_a_run_past_its_timeout(tmp_path: Path) -> None:
    m = measure.run(["sleep", "30"], tmp_path, timeout_s=0.3)
    assert m.timed_out and m.wall_s < 5


def test_is_task_recognises_task_processes() -> None:
    progs = frozenset({"mAdd", "true"})
    assert measure.is_task(["/usr/bin/mAdd", "x"], progs)
    assert measure.is_task(["/bin/sh", "-c", "exec true"], progs)
    assert measure.is_task(["python3", "tools/split_fasta.py"], progs)
    assert not measure.is_task(["python3", "-m", "chalicelib.cli", "run"], progs)
    assert not measure.is_task(["/usr/bin/makeflow", "-T", "local"], progs)


def results_fixture() -> dict[str, Any]:
    runs = []
    walls = {"floor": [1.0, 1.2, 0.8], "updraft": [1.1, 1.3, 1.2], "makeflow": [7.0, 6.0, 8.0],
             "parsl": [3.0, 4.0, 3.5]}
    for engine, ws in walls.items():
        runs += [{"workload": "fan", "engine": engine, "round": i, "wall_s": w, "pss_mb": 10 + i, "rss_mb": 9,
                  "others_cores": 0.1, "error": None} for i, w in enumerate(ws)]
    runs += [{"workload": "blast", "engine": e, "round": 0, "wall_s": w, "pss_mb": 5, "rss_mb": 5,
              "others_cores": 0.0, "error": None} for e, w in (("updraft", 5.0), ("makeflow", 4.0))]
    return {
        "date": "2026-01-01", "cores": 2, "repeat": 3, "runs": runs, "unavailable": {"parsl": "not installed"},
        "machine": {"cpu": "cpu", "cores": 2, "memory_gb": 24}, "versions": {"updraft": "U", "makeflow": "M"},
        "load": {"note": "quiet", "loaded": False},
        "engines": [{"name": n, "label": n.title(), "how": "h", "synthetic_only": n == "floor"}
                    for n in ("floor", "updraft", "makeflow", "parsl")],
        "workloads": [{"name": "fan", "label": "fan", "tasks": 2000, "synthetic": True},
                      {"name": "blast", "label": "BLAST", "tasks": 11, "synthetic": False}],
        "updraft_10k": {"workload": "fan-10000", "tasks": 10000, "wall_s": 5.0, "pss_mb": 120, "rss_mb": 310,
                        "error": None},
    }


def test_summary_takes_medians_and_overhead_over_the_floor() -> None:
    rows = {(r["workload"], r["engine"]): r for r in report.summarize(results_fixture())}
    up = rows[("fan", "updraft")]
    assert up["wall_s"] == pytest.approx(1.2)
    assert up["tasks_per_s"] == pytest.approx(2000 / 1.2)
    assert up["overhead_ms"] == pytest.approx((1.2 - 1.0) / 2000 * 1000)
    assert up["pss_mb"] == 12
    assert rows[("fan", "parsl")]["error"] == "not installed"
    assert ("blast", "floor") not in rows
    assert "overhead_ms" not in rows[("blast", "updraft")]


def test_targets_are_judged_against_the_fastest_measured_peer() -> None:
    results = results_fixture()
    goals = {(g["workload"], g["target"]): g for g in report.targets(report.summarize(results), results)}
    assert goals[("fan", ">= 2x the fastest peer's tasks/s")]["met"]  # 7.0 / 1.2 = 5.8x Makeflow
    assert goals[("fan", "<= 1.25x the floor's wall time")]["met"]
    assert not goals[("blast", "no slower than the fastest peer")]["met"]
    assert not goals[("fan-10000", "peak engine memory < 300 MB")]["met"]  # the largest process is 310 MB


def test_section_replaces_only_its_own_lines() -> None:
    first = report.replace_section("# Benchmarks\n\n## Overhead\n\ntheirs\n", "ONE")
    assert first.startswith("# Benchmarks\n\n## Overhead\n\ntheirs\n\n## Peers\n\n")
    edited = first + "\nhand-written profile notes\n\n## Later\n\nalso theirs\n"
    second = report.replace_section(edited, "TWO")
    assert "ONE" not in second and "TWO" in second
    assert second.replace("TWO", "ONE") == edited
    assert report.replace_section("", "X").startswith("# Benchmarks\n\n## Peers\n")
    assert "## Peers\n\n" + report.BEGIN in report.replace_section("## Peers\nnotes\n", "Y")


def test_markdown_marks_engines_that_were_not_measured() -> None:
    results = results_fixture()
    rows = report.summarize(results)
    text = report.markdown(results, rows, report.targets(rows, results), "img/x.png")
    assert "| fan | 2000 | Parsl | not measured: not installed |" in text
    assert "not measured: not installed | h |" in text
    assert "![" in text and "| fan | 2000 | Updraft | 1.20 | 1667 | 0.10 | 12 | 9 |" in text


def test_merge_replaces_only_the_remeasured_workloads_and_says_so() -> None:
    bench = load_script(SCRIPTS / "bench-peers", "bench_peers")
    old = results_fixture()
    new = {"date": "2026-01-02", "workloads": [{"name": "blast"}],
           "runs": [{"workload": "blast", "engine": "updraft", "round": 0, "wall_s": 3.0, "pss_mb": 5, "rss_mb": 5,
                     "others_cores": 0.5, "error": None}]}
    merged = bench.merge(old, new)
    assert [r["wall_s"] for r in merged["runs"] if r["workload"] == "blast"] == [3.0]
    assert len([r for r in merged["runs"] if r["workload"] == "fan"]) == 12
    assert merged["remeasured"][0]["workloads"] == ["blast"]
    rows = report.summarize(merged)
    text = report.markdown(merged, rows, report.targets(rows, merged), None)
    assert "Re-measured 2026-01-02" in text and ": BLAST" in text


def test_updraft_runs_from_the_checkout_when_its_venv_cannot_be_made(tmp_path: Path, overhead: ModuleType) -> None:
    from peers import install

    blocker = tmp_path / "not-a-folder"
    blocker.write_text("a file where the venv's parent folder should be")
    ours, problems = install.updraft(blocker / "updraft-venv", REPO)
    assert len(problems) == 1 and "Updraft ran from the checkout" in problems[0]
    assert ours.prefix == install.checkout(REPO).prefix and ours.env == {"PYTHONPATH": str(REPO)}
    wf = tmp_path / "one.json"
    wf.write_text(json.dumps({"name": "one", "tasks": [{"id": "t", "command": ["true"]}]}))
    cmd = overhead.engine_cmd(ours, wf, tmp_path / "wd", 2)
    done = subprocess.run(cmd, env={**os.environ, **ours.env}, cwd=tmp_path, capture_output=True, text=True,
                          timeout=120)
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout.strip().splitlines()[-1])["state"] == "SUCCEEDED"


def test_settle_waits_for_an_idle_window_and_gives_up_at_its_limit() -> None:
    clock = {"t": 0.0, "busy": 0.0}
    load = {"cores": 1.5}

    def sleep(s: float) -> None:
        clock["t"] += s
        clock["busy"] += load["cores"] * s

    def busy() -> float:
        return clock["busy"]

    assert measure.settle(max_wait_s=3, window_s=0.25, busy_s=busy, sleep=sleep) == 3  # never idle: its limit
    load["cores"] = 0.02
    assert measure.settle(max_wait_s=3, window_s=0.25, busy_s=busy, sleep=sleep) == 0.25  # idle at once


def test_each_timed_run_follows_untimed_warm_ups_of_the_same_engine(tmp_path: Path,
                                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    from peers.engines import Engine, Env, Prepared

    bench = load_script(SCRIPTS / "bench-peers", "bench_peers")
    monkeypatch.setattr(measure, "settle", lambda: 0.0)
    seen = tmp_path / "seen.txt"

    class Recorder(Engine):
        def prepare(self, env: Env, wl: workloads.Workload, tasks: Any, run_dir: Path) -> Prepared:
            run_dir.mkdir(parents=True)
            cmd = ["/bin/sh", "-c", f'echo "{wl.name} {len(tasks)}" >> "{seen}"; test {wl.name} != warm-up']
            return Prepared(cmd, run_dir, dict(os.environ), lambda m: f"exit {m.returncode}" if m.returncode else None)

    wl = workloads.synthetic("fan-3", "3 independent", workloads.fan(3))
    engine, env = Recorder("rec", "recorder", "sh"), Env(tmp_path / "venv", 2)
    result = bench.run_once(engine, env, wl, translate.translate(wl.doc), tmp_path, 30, warmup=2)
    # a failed warm-up is reported, not fatal: the timed run still runs and counts
    assert seen.read_text().splitlines() == ["warm-up 1", "warm-up 1", "fan-3 3"]
    assert result["error"] is None
    seen.unlink()
    bench.run_once(engine, env, wl, translate.translate(wl.doc), tmp_path, 30, warmup=0)
    assert seen.read_text().splitlines() == ["fan-3 3"]
    results = {**results_fixture(), "warmup": 1}
    rows = report.summarize(results)
    assert "right after one untimed run of the same engine" in report.markdown(results, rows, [], None)


def test_load_note_calls_a_run_loaded_only_when_other_work_took_cpu_beside_it() -> None:
    bench = load_script(SCRIPTS / "bench-peers", "bench_peers")
    unsettled = {"waited_s": 120.0, "quiet": False, "load1": 2.1}
    calm = bench.load_note([{"others_cores": 0.05}, {"others_cores": 0.1}], unsettled)
    assert not calm["loaded"] and "under load" not in calm["note"]
    assert "within 2 min of waiting, and the run went ahead" in calm["note"]
    busy = bench.load_note([{"others_cores": 0.5}, {"others_cores": 0.2}], None)
    assert busy["loaded"] and busy["note"].endswith("so these figures were taken under load.")
    assert "0.35 cores (worst run 0.50)" in busy["note"]
