"""Sizes that exist, on the emulated cloud: each attempt runs on the function size or the
Fargate size it needs, an out-of-memory kill moves the retry to the next function size or to a
bigger container, and a planner's plan (cost, deadline, budget) is applied task by task.
Which size an attempt ran on is what it recorded: the task function's memory (Lambda's
context) or the worker's Fargate size (the stack's, or a RunTask override)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from msgspec.structs import replace

from chalicelib.planner.pricing import fargate_size
from tests.e2e.test_cloud_harness import EmulatedCloud, emulated_cloud

Ran = tuple[str, float, int]  # (placement, vCPU or 0.0 for a function, memory MB)
HOG = "import time; block = b'x' * ({mb} << 20); time.sleep(1.5)"  # holds `mb` MB of RSS


def _task(tid: str, placement: str, memory_mb: int, cpus: float = 1.0, hog_mb: int = 0,
          retries: int = 0) -> dict[str, Any]:
    command = ["python3", "-c", HOG.format(mb=hog_mb)] if hog_mb else ["true"]
    return {"id": tid, "command": command, "placement": placement, "retries": retries,
            "resources": {"memory_mb": memory_mb, "cpus": cpus, "timeout_s": 120}}


def _results(ec: EmulatedCloud, run_id: str) -> dict[str, Any]:
    return {r.task_id: r for r in ec.cloud.store.list_tasks(run_id)}


@pytest.mark.slow
def test_each_attempt_runs_on_the_size_it_needs_and_oom_moves_it_up(tmp_path: Path) -> None:
    workflow = {"name": "sizes", "tasks": [
        _task("small", "function", 300),
        _task("grows", "function", 300, hog_mb=450),  # killed at 300 MB on task-512; fits 1,769
        # killed on the 0.5 GB worker; its retry (doubled memory) cannot run there
        _task("boxed", "container", 400, cpus=0.25, hog_mb=600, retries=1),
        _task("big", "container", 6000, cpus=2.0),  # bigger than the worker service's task size
    ]}
    # the worker service runs 0.25 vCPU / 512 MB tasks (the paper's t2.micro)
    with emulated_cloud(tmp_path, worker_cpu=256, worker_memory_mb=512) as ec:
        resp = ec.post("/runs", {"workflow": workflow})
        assert resp.status_code == 202, resp.json_body
        run_id = resp.json_body["run_id"]
        final = ec.run_until_done(run_id, timeout_s=240)
        recs = _results(ec, run_id)
        assert final["state"] == "SUCCEEDED", ({t: (r.state, r.reason, r.attempt, (r.result and r.result.log_tail))
                                                for t, r in recs.items()}, ec.worker_log()[-3000:])
        invoked = ec.fake_lambda.functions
        fn = ec.cloud.config.task_function

        assert invoked[(run_id, "small", 1)] == f"{fn}-512" and recs["small"].result.function_mb == 512

        grows = recs["grows"]
        assert grows.attempt == 2 and grows.max_attempts == 2  # a size step spends none of its retries
        assert [invoked[(run_id, "grows", a)] for a in (1, 2)] == [f"{fn}-512", f"{fn}-1769"]
        assert grows.result.function_mb == 1769

        boxed = recs["boxed"]  # 400 MB: the queue; killed; 800 MB: a Fargate task of its own
        assert boxed.attempt == 2 and boxed.placement == "container"
        assert (boxed.result.container_cpu, boxed.result.container_memory_mb) == (0.25, 1024)

        big = recs["big"]
        assert big.attempt == 1
        assert (big.result.container_cpu, big.result.container_memory_mb) == (2.0, 6144)
        sizes = sorted((t["cpu"], t["memory"], t["payload"]["task_id"]) for t in ec.run_tasks.values())
        assert sizes == [("2048", "6144", "big"), ("256", "1024", "boxed")]


@pytest.mark.slow
def test_a_function_task_no_deployed_size_holds_is_refused_naming_the_largest(tmp_path: Path) -> None:
    workflow = {"name": "too-big", "tasks": [_task("huge", "function", 6000)]}
    with emulated_cloud(tmp_path, function_sizes="512,1769,3008") as ec:
        resp = ec.post("/runs", {"workflow": workflow})
        assert resp.status_code == 400
        text = json.dumps(resp.json_body)
        assert "3,008 MB" in text and "UPDRAFT_FUNCTION_SIZES" in text


# ---- the planner's plans, applied -------------------------------------------------------------

montage = pytest.importorskip("examples.montage.generate")


def _expected_container(ec: EmulatedCloud, cpus: float, memory_mb: int) -> tuple[float, int]:
    """Where a container choice runs: the worker service when its size holds it, else a Fargate
    task of the smallest valid pair that does."""
    cfg = ec.cloud.config
    if cpus <= cfg.worker_cpu / 1024 and memory_mb <= cfg.worker_memory_mb:
        return cfg.worker_cpu / 1024, cfg.worker_memory_mb
    return fargate_size(max(cpus, 0.25), memory_mb)


def _ran_where(ec: EmulatedCloud, workflow: Any, plans: dict[str, Any], data: str) -> Iterator[tuple[str, Any, Ran]]:
    """Run each plan applied to `workflow` to its end on the emulated cloud, checking it
    SUCCEEDED with every task on its first attempt, and the placement each task's attempt
    recorded (function: Lambda's size it was invoked on and ran with, checked against the
    deployed function of the choice's size; container: the Fargate size the worker ran at)."""
    from chalicelib.planner.plans import FUNCTION, apply_plan
    from chalicelib.workflow.formats import native

    fn = ec.cloud.config
    for name, plan in plans.items():
        body = json.loads(native.dump(apply_plan(workflow, plan)))
        resp = ec.post("/runs", {"workflow": body, "data": data})
        assert resp.status_code == 202, resp.json_body
        run_id = resp.json_body["run_id"]
        final = ec.run_until_done(run_id, timeout_s=280)
        recs = _results(ec, run_id)
        failed = {tid: (rec.state, rec.reason, rec.result) for tid, rec in recs.items() if rec.state != "SUCCEEDED"}
        assert final["state"] == "SUCCEEDED", (name, failed, ec.worker_log()[-3000:])
        for tid, rec in recs.items():
            choice = plan.choices[tid]
            assert rec.attempt == 1, (name, tid)
            assert rec.placement == choice.placement, (name, tid, choice)
            if choice.placement == FUNCTION:
                assert ec.fake_lambda.functions[(run_id, tid, 1)] == fn.function_for(choice.memory_mb)
                assert rec.result.function_mb == choice.memory_mb, (name, tid)
                yield name, choice, ("function", 0.0, choice.memory_mb)
            else:
                yield name, choice, ("container", rec.result.container_cpu, rec.result.container_memory_mb)


@pytest.mark.slow
@pytest.mark.tools
def test_the_planners_montage_plans_run_on_the_sizes_they_chose(tmp_path: Path) -> None:
    from examples.toolcheck import missing_tools

    missing = missing_tools(montage.GENERATOR_TOOLS + montage.WORKFLOW_TOOLS)
    if missing:
        pytest.skip(f"Montage tools missing ({', '.join(missing)}): scripts/install-tools montage")
    from chalicelib.planner import make_plan
    from chalicelib.planner.platform import Platform
    from chalicelib.workflow.formats import load
    from tests.e2e.test_cloud_montage import upload_dir

    summary = montage.generate(str(tmp_path / "gen"), degrees=0.2, seed=1)
    workflow = load(str(summary["workflow"]))
    platform = Platform()  # the emulated stage deploys the default sizes: the plans use the same
    cheap, fast = make_plan(workflow, "cost", platform=platform), make_plan(workflow, "makespan", platform=platform)
    plans = {
        "cost": cheap,
        "deadline": make_plan(workflow, deadline=(cheap.makespan_s + fast.makespan_s) / 2, platform=platform),
        "budget": make_plan(workflow, budget=(cheap.cost.total + fast.cost.total) / 2, platform=platform),
    }
    seen: set[Ran] = set()
    with emulated_cloud(tmp_path) as ec:
        data = upload_dir(ec, Path(str(summary["data"])), "inputs/montage/")
        for name, choice, ran in _ran_where(ec, workflow, plans, data):
            if ran[0] == "container":
                assert ran[1:] == _expected_container(ec, choice.cpus, choice.memory_mb), (name, choice, ran)
            seen.add(ran)
    assert len(seen) >= 2, seen  # the three plans do not all put every task on one size


@pytest.mark.slow
@pytest.mark.tools
def test_the_papers_worker_plans_run_on_the_worker_and_the_functions_they_chose(tmp_path: Path) -> None:
    """The first seed paper's configurations in the cloud's shape: one always-on 0.25 vCPU /
    0.5 GB container worker (its t2.micro) plus functions of the deployed sizes (256 MB added,
    as scripts/bench-planner deploys them). The hybrid baseline and the planner's deadline and
    budget plans for that platform each run on the emulated cloud, whose worker service is that
    size: every container choice must run on the worker service, every function choice on the
    function of its size."""
    from examples.toolcheck import missing_tools

    missing = missing_tools(montage.GENERATOR_TOOLS + montage.WORKFLOW_TOOLS)
    if missing:
        pytest.skip(f"Montage tools missing ({', '.join(missing)}): scripts/install-tools montage")
    from chalicelib.planner.planner import Objective, Planner
    from chalicelib.planner.plans import CONTAINER, FUNCTION, Choice
    from chalicelib.planner.platform import FixedWorkers, Platform
    from chalicelib.workflow.formats import load
    from chalicelib.workflow.limits import DEFAULT_FUNCTION_SIZES
    from chalicelib.workflow.model import Placement
    from tests.e2e.test_cloud_montage import upload_dir

    sizes = (256, *DEFAULT_FUNCTION_SIZES)
    worker = FixedWorkers(count=1, cpus=0.25, memory_mb=512)
    summary = montage.generate(str(tmp_path / "gen"), degrees=0.2, seed=1)
    # every task `auto`, as the paper let its planner place each one (scripts/bench-planner), and
    # declared to fit the worker and the 256 MB functions (these Montage tasks peak far below): a task declaring
    # more cannot run on it, so the plan would mark it at risk and the cloud give it a Fargate
    # task of its own, sized as declared
    workflow = load(str(summary["workflow"]))
    workflow = replace(workflow, tasks=tuple(
        replace(t, placement=Placement.AUTO, resources=replace(t.resources, memory_mb=256)) for t in workflow.tasks))
    planner = Planner(workflow, None, Platform(fixed_workers=worker, function_sizes=sizes))
    on_worker = Choice(CONTAINER, worker.memory_mb, worker.cpus)
    hybrid = planner.from_choices(
        "hybrid", lambda i: Choice(FUNCTION, 256) if planner.function_ok(i, 256) else on_worker)
    alone = planner.from_choices("containers", lambda i: on_worker)
    plans = {
        "hybrid": hybrid,
        "deadline": planner.plan(Objective("deadline", (hybrid.makespan_s + alone.makespan_s) / 2)),
        "budget": planner.plan(Objective("budget", (hybrid.cost.total + alone.cost.total) / 2)),
    }
    placements: dict[str, set[str]] = {}
    with emulated_cloud(tmp_path, worker_cpu=256, worker_memory_mb=512,
                        function_sizes=",".join(map(str, sizes))) as ec:
        data = upload_dir(ec, Path(str(summary["data"])), "inputs/montage/")
        for name, choice, ran in _ran_where(ec, workflow, plans, data):
            placements.setdefault(name, set()).add(ran[0])
            if ran[0] == "container":  # the always-on worker, not a Fargate task of its own
                assert ran[1:] == (0.25, 512), (name, choice, ran)
    # the planner's plans are hybrids too: part of the work on the worker, part on functions
    assert placements["deadline"] == {FUNCTION, CONTAINER}, placements
    assert placements["budget"] == {FUNCTION, CONTAINER}, placements
