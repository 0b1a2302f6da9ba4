from __future__ import annotations

from pathlib import Path

import pytest

from chalicelib.planner.costs import ControlPlane
from chalicelib.planner.estimate import estimate
from chalicelib.planner.history import Sample
from chalicelib.planner.perfmodel import PerfModel
from chalicelib.planner.planner import CONTAINER, FUNCTION, Objective, Planner
from chalicelib.planner.plans import Choice, Plan
from chalicelib.planner.platform import FixedWorkers, Latencies, Platform
from chalicelib.planner.pricing import PRICES
from chalicelib.planner.simulator import simulate
from chalicelib.workflow.formats import load
from chalicelib.workflow.model import Placement, Task, Workflow

MONTAGE_01 = "montage-chameleon-2mass-01d-001.json"  # 103 tasks, 0.1 degree
# Round numbers for hand computation; no staging time (no sizes, no per-object latency).
LAT = Latencies(function_cold_s=1.0, function_warm_s=0.0, invoke_s=0.5, event_s=0.25, coordinator_s=0.125,
                container_start_s=30.0, container_poll_s=0.5, s3_request_s=0.0)


def _t(tid: str, runtime: float, inputs: tuple[str, ...] = (), **hints: float) -> Task:
    return Task(id=tid, command=(tid,), inputs=inputs, outputs=(f"{tid}.out",), placement=Placement.AUTO,
                hints={"runtime_s": runtime, **hints})


def _all(wf: Workflow, choice: Choice) -> Plan:
    return Plan("all", {t.id: choice for t in wf.tasks})


DIAMOND = Workflow("diamond", (
    _t("a", 10.0), _t("b", 20.0, ("a.out",)), _t("c", 20.0, ("a.out",)), _t("d", 7.0, ("b.out", "c.out")),
))


def test_makespan_of_a_diamond_on_functions_matches_the_hand_computation() -> None:
    result = simulate(DIAMOND, _all(DIAMOND, Choice(FUNCTION, 1769)), Platform(latencies=LAT), keep_tasks=True)
    # a: launched 0.125, invoked 0.625, cold start to 1.625, runs 10 s -> 11.625
    # b, c: its event reaches the coordinator at 11.875, launched 12.0, invoked 12.5;
    #       one takes a's warm environment (-> 32.5), the other starts cold (-> 33.5)
    # d: c's event 33.75, launched 33.875, invoked 34.375 on a warm environment -> 41.375
    # run: the last event 41.625, the coordinator's step ends 41.75
    assert result.state == "SUCCEEDED"
    assert result.makespan_s == pytest.approx(41.75)
    assert result.finished["a"] == pytest.approx(11.625)
    assert sorted((result.finished["b"], result.finished["c"])) == pytest.approx([32.5, 33.5])
    assert result.finished["d"] == pytest.approx(41.375)
    assert (result.usage.invocations, result.usage.cold_starts) == (4, 2)
    billed_s = 11 + 20 + 21 + 7  # runs, plus the two billed INIT seconds
    expected = 4 * PRICES.functions.per_request + billed_s * 1769 / 1024 * PRICES.functions.per_gb_s_x86_64
    assert result.cost.functions == pytest.approx(expected)


def test_a_chain_on_one_always_on_worker_runs_at_its_cpu_share() -> None:
    wf = Workflow("chain", (_t("x", 2.0), _t("y", 3.0, ("x.out",))))
    platform = Platform(latencies=LAT, fixed_workers=FixedWorkers(1, 0.25, 512))
    result = simulate(wf, _all(wf, Choice(CONTAINER, 512, 0.25)), platform)
    # x: queued 0.125, polled 0.625, 2 s of work on 0.25 vCPU -> 8.625
    # y: event 8.875, queued 9.0, polled 9.5, 12 s -> 21.5; run ends 21.75 + 0.125
    assert result.makespan_s == pytest.approx(21.875)
    assert result.cost.containers == pytest.approx(60 * PRICES.containers.rate_per_s(0.25, 512))  # 1-minute minimum
    assert result.usage.workers_started == 0  # pre-started


@pytest.mark.parametrize(("max_workers", "makespan", "started"), [(1, 40.625 + 10.5 + 0.375, 1), (2, 41.0, 2)])
def test_elastic_workers_boot_then_are_reused(max_workers: int, makespan: float, started: int) -> None:
    wf = Workflow("pair", (_t("p", 10.0), _t("q", 10.0)))
    platform = Platform(latencies=LAT, max_workers=max_workers)
    result = simulate(wf, _all(wf, Choice(CONTAINER, 2048, 1.0)), platform)
    # each queued at 0.125; a worker boots for 30 s, polls 0.5 s, runs 10 s -> 40.625;
    # with one worker the second task follows on it (poll 0.5 + 10 s); then the last event + step
    assert result.makespan_s == pytest.approx(makespan)
    assert result.usage.workers_started == started
    assert result.cost.containers == pytest.approx(started * 60 * PRICES.containers.rate_per_s(1.0, 2048))


def test_function_concurrency_makes_waves() -> None:
    wf = Workflow("wide", tuple(_t(f"w{i}", 10.0) for i in range(4)))
    platform = Platform(latencies=LAT, function_concurrency=2)
    result = simulate(wf, _all(wf, Choice(FUNCTION, 1769)), platform)
    # wave 1: invoked 0.625, cold, ends 11.625; wave 2 takes the freed warm environments -> 21.625
    assert result.makespan_s == pytest.approx(21.625 + 0.25 + 0.125)
    assert result.usage.cold_starts == 2


def test_a_function_that_runs_out_of_memory_is_retried_bigger_then_in_a_container() -> None:
    wf = Workflow("spill", (_t("s", 30.0, memory_bytes=1000 * 1_048_576), _t("t", 5.0, ("s.out",))))
    plan = Planner(wf).plan(Objective("makespan"))
    assert plan.choices["s"].placement == FUNCTION and plan.choices["s"].memory_mb < 2000
    truth = PerfModel([Sample("s", "local", duration_s=30.0, memory_mb=4096, peak_rss_mb=2000.0)])
    result = simulate(wf, plan, perf=truth)
    # OOM on the function; the retry goes to the next deployed function size (3,008 MB)
    assert result.state == "SUCCEEDED"
    assert (result.attempts, result.spills) == (3, 0)
    # a stage whose largest function is too small: the coordinator spills the `auto` task to a
    # container, whose Fargate size (1 vCPU / 2 GB, rounded up) holds it
    small = Platform(function_sizes=(512, 1769))
    result = simulate(wf, Planner(wf, platform=small).plan(Objective("makespan")), small, perf=truth)
    assert result.state == "SUCCEEDED"
    assert (result.attempts, result.spills) == (3, 1)


def test_a_task_that_outlives_every_limit_fails_and_its_descendants_do_not_run() -> None:
    wf = Workflow("doomed", (_t("s", 30.0), _t("t", 5.0, ("s.out",)), _t("u", 5.0)))
    plan = Planner(wf).plan(Objective("makespan"))
    truth = PerfModel([Sample("s", "local", duration_s=5000.0, memory_mb=4096)], prior_weight=0.0)
    result = simulate(wf, plan, perf=truth)
    # the function times out at 15 min, the spill's container has the same 15-min timeout
    assert result.state == "FAILED"
    assert result.spills == 1 and result.failed == 2  # s FAILED, t UPSTREAM_FAILED; u ran
    assert result.makespan_s > 2 * 900


def test_retries_with_backoff_are_the_coordinators() -> None:
    wf = Workflow("retry", (Task(id="r", command=("r",), retries=2, placement=Placement.FUNCTION,
                                 hints={"runtime_s": 2000.0}),))
    result = simulate(wf, None, Platform(latencies=LAT))
    assert result.state == "FAILED" and result.attempts == 3 and result.spills == 0


def test_noise_is_seeded() -> None:
    plan = _all(DIAMOND, Choice(FUNCTION, 1769))
    one, two = simulate(DIAMOND, plan, noise=0.5, seed=7), simulate(DIAMOND, plan, noise=0.5, seed=7)
    other = simulate(DIAMOND, plan, noise=0.5, seed=8)
    assert one.makespan_s == two.makespan_s != other.makespan_s


@pytest.fixture(scope="module")
def montage() -> Workflow:
    path = Path(__file__).resolve().parents[3] / "shared" / "workflows" / "wfcommons" / MONTAGE_01
    if not path.is_file():
        pytest.skip(f"{path} is absent")
    return load(str(path))


@pytest.mark.parametrize("objective", [Objective("cost"), Objective("makespan"), Objective("budget", 0.013)])
def test_the_planners_estimate_agrees_with_the_engine_driven_simulation(
    montage: Workflow, objective: Objective,
) -> None:
    planner = Planner(montage)
    plan = planner.plan(objective)
    sim = simulate(montage, plan)
    assert sim.state == "SUCCEEDED" and sim.attempts == len(montage.tasks)
    assert sim.makespan_s == pytest.approx(plan.makespan_s, rel=0.01)
    assert sim.cost.compute == pytest.approx(plan.cost.compute, rel=0.01)
    # the control plane the estimator assumes is what the coordinator actually did, roughly
    typical = planner.problem.control_plane(list(plan.choices.values()))
    for field in ("write_units", "read_units", "sqs_requests", "s3_puts", "s3_gets"):
        assert getattr(sim.control, field) == pytest.approx(getattr(typical, field), rel=0.15), field
    assert estimate(planner.problem, list(plan.choices.values())).makespan_s == plan.makespan_s


def test_the_1066_task_montage_trace_simulates_whole(shared_workflows: Path) -> None:
    wf = load(str(shared_workflows / "wfcommons" / "montage-chameleon-dss-125d-001.json.gz"))
    assert len(wf.tasks) == 1066
    result = simulate(wf, _all(wf, Choice(FUNCTION, 3008, disk_mb=10_240)))
    assert result.state == "SUCCEEDED" and result.tasks == 1066 and result.attempts == 1066
    assert result.events == 2 * 1066 + 1  # start + started/finished per task
    assert isinstance(result.control, ControlPlane)
