from __future__ import annotations

from pathlib import Path

import pytest

from chalicelib.attempt import AttemptResult
from chalicelib.engine.records import TaskRecord
from chalicelib.engine.states import TaskState
from chalicelib.planner.history import JsonlHistoryStore, MemoryHistoryStore, Sample, samples_from_run
from chalicelib.planner.perfmodel import DEFAULT_RUNTIME_S, PerfModel, file_sizes, fit_type
from chalicelib.workflow.model import Resources, Task, Workflow


def _task(tid: str = "t", ttype: str = "blastn", **hints: float) -> Task:
    return Task(id=tid, command=(ttype,), type=ttype, hints=hints)


def test_fit_recovers_work_as_a_line_in_input_bytes() -> None:
    # work = 2 s + 1 s per MB, measured on 0.5 vCPU functions (so each took twice as long)
    samples = [Sample("blastn", "function", duration_s=2 * (2 + mb), memory_mb=885, vcpus=0.5,
                      bytes_in=mb * 1_000_000) for mb in (1, 5, 10, 20)]
    model = fit_type(samples)
    assert model is not None
    assert model.a == pytest.approx(2.0)
    assert model.b * 1_000_000 == pytest.approx(1.0)
    assert model.work(8_000_000) == pytest.approx(10.0)


def test_without_spread_in_inputs_the_fit_is_the_mean() -> None:
    samples = [Sample("x", "local", duration_s=d, memory_mb=512, bytes_in=100) for d in (9, 10, 11)]
    model = fit_type(samples)
    assert model is not None and model.b == 0.0 and model.a == pytest.approx(10.0)


def test_history_normalises_cpu_local_runs_are_unthrottled() -> None:
    perf = PerfModel.learn([
        Sample("sort", "local", duration_s=10, memory_mb=128),  # vcpus None: one full core
        Sample("sort", "container", duration_s=40, memory_mb=512, vcpus=0.25),
    ])
    demand = perf.demand(_task(ttype="sort"))
    assert demand.source == "history"
    assert demand.work_s == pytest.approx(10.0)
    assert demand.compute_s(1769 / 1769) == pytest.approx(10.0)
    assert demand.compute_s(0.5) == pytest.approx(20.0)
    assert demand.compute_s(4.0) == pytest.approx(10.0)  # one thread cannot use four vCPUs


def test_hints_are_the_prior_and_history_pulls_them() -> None:
    task = _task(runtime_s=100.0, threads=2.0)
    hint_only = PerfModel().demand(task)
    assert hint_only.source == "hint" and hint_only.work_s == pytest.approx(200.0) and hint_only.threads == 2.0
    learned = PerfModel.learn([Sample("blastn", "local", duration_s=50, memory_mb=512)] * 2, prior_weight=2.0)
    blended = learned.demand(task)
    assert blended.source == "history+hint"
    assert blended.work_s == pytest.approx((2 * 200.0 + 2 * 100.0) / 4)  # two samples of 50 s x 2 threads


def test_no_history_no_hint_is_a_flagged_default() -> None:
    demand = PerfModel().demand(_task())
    assert demand.source == "default" and demand.work_s == DEFAULT_RUNTIME_S and demand.peak_mb is None


def test_peak_memory_comes_from_hints_history_and_oom_failures() -> None:
    assert PerfModel().demand(_task(memory_bytes=200 * 1_048_576)).peak_mb == pytest.approx(200.0)
    assert PerfModel().demand(_task(avg_cpu=399.0)).threads == 4.0
    perf = PerfModel.learn([
        Sample("blastn", "local", duration_s=5, memory_mb=4096, peak_rss_mb=700.0),
        Sample("blastn", "function", duration_s=1, memory_mb=1024, vcpus=0.58, ok=False, reason="OOM"),
    ])
    assert perf.demand(_task()).peak_mb == pytest.approx(1024.0)


def test_bytes_come_from_the_files_sizes_recorded_on_producers() -> None:
    a = Task(id="a", command=("gen",), outputs=("x.dat",), hints={"size:x.dat": 3e6})
    b = Task(id="b", command=("use",), inputs=("x.dat", "raw.fits"), outputs=("y.dat",),
             hints={"size:raw.fits": 1e6, "size:y.dat": 5e5})
    wf = Workflow("w", (a, b))
    sizes = file_sizes(wf)
    assert sizes == {"x.dat": 3e6, "raw.fits": 1e6, "y.dat": 5e5}
    demand = PerfModel().demand(b, sizes)
    assert demand.bytes_in == 4e6 and demand.bytes_out == 5e5


def test_jsonl_history_round_trips_and_skips_torn_lines(tmp_path: Path) -> None:
    store = JsonlHistoryStore(str(tmp_path / "h" / "history.jsonl"), keep_per_type=3)
    store.add([Sample("a", "local", duration_s=float(i), memory_mb=128, at=float(i)) for i in range(5)])
    store.add([Sample("b", "function", duration_s=1.0, memory_mb=256, vcpus=0.14, peak_rss_mb=80.0, at=9.0)])
    with open(store.path, "a", encoding="utf-8") as fh:
        fh.write('{"task_type": "a", "env": "lo')  # a torn write
    got = store.samples()
    assert [s.duration_s for s in got if s.task_type == "a"] == [2.0, 3.0, 4.0]  # the newest three
    assert [s for s in got if s.task_type == "b"] == [
        Sample("b", "function", duration_s=1.0, memory_mb=256, vcpus=0.14, peak_rss_mb=80.0, at=9.0)]
    assert store.samples(["b"])[0].task_type == "b"
    assert JsonlHistoryStore(str(tmp_path / "missing.jsonl")).samples() == []


def test_samples_from_a_finished_run_keep_successes_and_limit_failures() -> None:
    wf = Workflow("w", (
        Task(id="ok", command=("blastn",), resources=Resources(memory_mb=2048, cpus=1.0)),
        Task(id="oom", command=("blastn",), resources=Resources(memory_mb=512)),
        Task(id="bad", command=("blastn",)),
        Task(id="cached", command=("blastn",)),
    ))
    result = AttemptResult(duration_s=3.0, bytes_in=10, bytes_out=20, peak_rss_mb=90.5, finished_at=5.0)
    records = [
        TaskRecord("r", "ok", TaskState.SUCCEEDED, 1, "container", 0, result=result),
        TaskRecord("r", "oom", TaskState.FAILED, 2, "function", 0, reason="OOM", result=result),
        TaskRecord("r", "bad", TaskState.FAILED, 1, "function", 0, reason="NONZERO_EXIT", result=result),
        TaskRecord("r", "cached", TaskState.CACHED, 1, "function", 0, result=AttemptResult()),
    ]
    local = samples_from_run(wf, records)
    assert [(s.env, s.vcpus, s.ok) for s in local] == [("local", None, True), ("local", None, False)]
    cloud = samples_from_run(wf, records, env="cloud")
    assert cloud[0].env == "container" and cloud[0].vcpus == 1.0
    assert cloud[1].env == "function" and cloud[1].vcpus == pytest.approx(512 / 1769) and cloud[1].reason == "OOM"
    store = MemoryHistoryStore()
    store.add(local)
    assert PerfModel.learn(store.samples()).demand(wf.tasks[0]).peak_mb == pytest.approx(512.0)


def test_a_big_run_adds_a_thinned_history_but_keeps_every_failure(tmp_path: Path) -> None:
    from chalicelib.planner import record_history

    wf = Workflow("w", tuple(Task(id=f"t{i}", command=("true",)) for i in range(1000)))
    records = [TaskRecord("r", f"t{i}", TaskState.SUCCEEDED, 1, "function", 0,
                          result=AttemptResult(duration_s=float(i), finished_at=float(i))) for i in range(999)]
    records.append(TaskRecord("r", "t999", TaskState.FAILED, 1, "function", 0, reason="OOM",
                              result=AttemptResult(duration_s=1.0, peak_rss_mb=200.0)))
    assert record_history(str(tmp_path), wf, records, per_type=100) == 101
    got = JsonlHistoryStore.in_workdir(str(tmp_path)).samples()
    durations = sorted(s.duration_s for s in got if s.ok)
    assert len(durations) == 100 and durations[0] == 0.0 and durations[-1] >= 980.0  # spread over the run
    assert [s.reason for s in got if not s.ok] == ["OOM"]
