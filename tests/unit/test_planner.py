from __future__ import annotations

import random
from pathlib import Path

import pytest

from chalicelib.errors import WorkflowError
from chalicelib.planner import make_plan, plan_table
from chalicelib.planner.planner import CONTAINER, FUNCTION, Objective, PlanError, Planner
from chalicelib.planner.plans import Choice, Plan, Split, apply_plan
from chalicelib.planner.pricing import PRICES, fargate_pairs
from chalicelib.planner.simulator import simulate
from chalicelib.workflow.formats import load
from chalicelib.workflow.model import Placement, Resources, Task, Workflow
from chalicelib.workflow.validate import validate

MB = 1_048_576
MONTAGE_01 = "montage-chameleon-2mass-01d-001.json"  # 103 tasks, 0.1 degree


def _t(tid: str, runtime: float, inputs: tuple[str, ...] = (), outputs: tuple[str, ...] = (),
       placement: Placement = Placement.AUTO, ttype: str | None = None, **hints: float) -> Task:
    return Task(id=tid, command=(ttype or tid,), type=ttype or tid, inputs=inputs, outputs=outputs,
                placement=placement, hints={"runtime_s": runtime, **hints})


def _fan(width: int = 6, runtime: float = 20.0) -> Workflow:
    """split -> width x work -> merge, every task type distinct per stage."""
    tasks = [_t("split", 5.0, outputs=tuple(f"p{i}" for i in range(width)), ttype="split")]
    tasks += [_t(f"w{i}", runtime, (f"p{i}",), (f"r{i}",), ttype="work") for i in range(width)]
    tasks.append(_t("merge", 8.0, tuple(f"r{i}" for i in range(width)), ("out",), ttype="merge"))
    return Workflow("fan", tuple(tasks))


def _assert_limits(planner: Planner, plan: Plan) -> None:
    fn = PRICES.functions
    for i, task in enumerate(planner.problem.tasks):
        choice = plan.choices[task.id]
        demand = planner.problem.demands[i]
        if task.placement is Placement.FUNCTION:
            assert choice.placement == FUNCTION
        if task.placement in (Placement.CONTAINER, Placement.LOCAL):
            assert choice.placement == CONTAINER
        if choice.placement == FUNCTION and task.placement is Placement.AUTO:
            assert choice.memory_mb <= fn.max_memory_mb
            assert planner.run_s(i, choice) <= fn.max_timeout_s
            assert demand.peak_mb is None or demand.peak_mb <= choice.memory_mb
            assert (demand.bytes_in + demand.bytes_out) / MB <= (choice.disk_mb or task.resources.disk_mb)
            assert (choice.disk_mb or task.resources.disk_mb) <= fn.max_tmp_mb
        if choice.placement == CONTAINER and task.placement is not Placement.LOCAL:
            assert (choice.cpus, choice.memory_mb) in fargate_pairs()
            assert demand.peak_mb is None or demand.peak_mb <= choice.memory_mb


def test_hard_limits_send_what_cannot_run_on_a_function_to_a_container() -> None:
    wf = Workflow("limits", (
        _t("long", 3000.0),  # 50 min of one thread: no function is fast enough
        _t("big", 10.0, memory_bytes=12_000 * MB),  # more memory than a function has
        Task(id="disky", command=("disky",), outputs=("huge.dat",), placement=Placement.AUTO,
             hints={"runtime_s": 10.0, "size:huge.dat": 11_000.0 * MB}),  # more than /tmp holds
        _t("payload", 10.0, inputs=tuple(f"in/{i:06d}-{'x' * 60}.fits" for i in range(20_000))),  # > 1 MB to invoke
        _t("pinned", 1.0, placement=Placement.CONTAINER),
        _t("short", 1.0),
    ))
    planner = Planner(wf)
    for objective in (Objective("cost"), Objective("makespan")):
        plan = planner.plan(objective)
        _assert_limits(planner, plan)
        for tid in ("long", "big", "disky", "payload", "pinned"):
            assert plan.choices[tid].placement == CONTAINER, (objective, tid)
        assert plan.choices["big"].memory_mb >= 12_000
        assert plan.choices["disky"].disk_mb >= 11_000
    # (under makespan the short task is off the critical path: either placement is as fast)
    assert planner.plan(Objective("cost")).choices["short"].placement == FUNCTION


def test_a_task_fixed_to_functions_stays_there_and_a_local_one_is_untouched() -> None:
    wf = Workflow("fixed", (
        _t("f", 2000.0, placement=Placement.FUNCTION),
        Task(id="l", command=("l",), placement=Placement.LOCAL, resources=Resources(memory_mb=300, cpus=3.0)),
    ))
    planner = Planner(wf)
    for objective in (Objective("cost"), Objective("makespan"), Objective("deadline", 10.0)):
        plan = planner.plan(objective)
        assert plan.choices["f"].placement == FUNCTION
        assert plan.choices["f"].memory_mb == 10_240  # the fastest a function gets; the prediction says at risk
        assert "hit a limit" in plan.note
    applied = apply_plan(wf, planner.plan(Objective("cost")))
    assert applied.tasks[1] == wf.tasks[1]


@pytest.mark.parametrize("seed", range(6))
def test_random_workflows_every_objective_respects_hard_limits(seed: int) -> None:
    rng = random.Random(seed)
    tasks = []
    for i in range(25):
        parents = rng.sample(range(i), k=min(i, rng.randint(0, 3)))
        hints = {"memory_bytes": rng.choice([50, 900, 3000, 15_000]) * MB,
                 f"size:o{i}": rng.choice([1, 100, 4000, 12_000]) * MB}
        placement = rng.choice([Placement.AUTO] * 4 + [Placement.FUNCTION, Placement.CONTAINER])
        if placement is Placement.FUNCTION:
            hints = {}
        tasks.append(_t(f"t{i}", rng.choice([0.5, 30, 400, 2000]), tuple(f"o{p}" for p in parents), (f"o{i}",),
                        placement, ttype=f"type{i % 5}", **hints))
    wf = Workflow("random", tuple(tasks))
    planner = Planner(wf)
    fastest = planner.plan(Objective("makespan"))
    cheapest = planner.plan(Objective("cost"))
    for objective in (Objective("deadline", (fastest.makespan_s + cheapest.makespan_s) / 2),
                      Objective("budget", (fastest.cost.total + cheapest.cost.total) / 2)):
        _assert_limits(planner, planner.plan(objective))
    _assert_limits(planner, fastest)
    _assert_limits(planner, cheapest)
    validate(apply_plan(wf, fastest))


def test_the_hybrid_plan_is_never_worse_than_one_kind_alone() -> None:
    planner = Planner(_fan(width=40, runtime=30.0))
    for objective, pick in ((Objective("cost"), 1), (Objective("makespan"), 0)):
        chosen = planner.plan(objective)
        for kind in (FUNCTION, CONTAINER):
            single = planner.plan(objective, kinds=(kind,))
            assert (chosen.makespan_s, chosen.cost.total)[pick] <= (single.makespan_s, single.cost.total)[pick] + 1e-12


@pytest.fixture(scope="module")
def montage() -> Workflow:
    path = Path(__file__).resolve().parents[3] / "shared" / "workflows" / "wfcommons" / MONTAGE_01
    if not path.is_file():
        pytest.skip(f"{path} is absent")
    return load(str(path))


def test_deadline_plans_meet_the_deadline_in_the_simulator(montage: Workflow) -> None:
    planner = Planner(montage)
    fast = planner.plan(Objective("makespan")).makespan_s
    slow = planner.plan(Objective("cost")).makespan_s
    assert fast < slow
    costs = []
    for frac in (0.05, 0.3, 0.6, 0.9):
        deadline = fast + frac * (slow - fast)
        plan = planner.plan(Objective("deadline", deadline))
        assert plan.meets and plan.makespan_s <= deadline
        sim = simulate(montage, plan)
        assert sim.state == "SUCCEEDED"
        assert sim.makespan_s <= deadline
        costs.append(plan.cost.total)
    assert costs == sorted(costs, reverse=True)  # a looser deadline never costs more


def test_budget_plans_stay_within_budget_in_the_simulator(montage: Workflow) -> None:
    planner = Planner(montage)
    low = planner.plan(Objective("cost")).cost.total
    high = planner.plan(Objective("makespan")).cost.total
    spans = []
    for frac in (0.0, 0.5, 1.2):
        budget = low + frac * (high - low) + 1e-9
        plan = planner.plan(Objective("budget", budget))
        assert plan.meets and plan.cost.total <= budget
        sim = simulate(montage, plan)
        assert sim.state == "SUCCEEDED"
        assert sim.cost.total <= budget * 1.02  # the control plane is counted, not estimated, there
        spans.append(plan.makespan_s)
    assert spans == sorted(spans, reverse=True)  # more money never makes it slower


def test_an_impossible_deadline_or_budget_says_so_with_the_closest_plan() -> None:
    planner = Planner(_fan())
    plan = planner.plan(Objective("deadline", 1.0))
    assert not plan.meets and "fastest plan takes" in plan.note
    assert plan.makespan_s == pytest.approx(planner.plan(Objective("makespan")).makespan_s)
    plan = planner.plan(Objective("budget", 1e-9))
    assert not plan.meets and "cheapest plan costs" in plan.note


@pytest.mark.parametrize(("kwargs", "message"), [
    ({"deadline": 10.0, "budget": 1.0}, "one of"),
    ({"objective": "cost", "deadline": 10.0}, "one of"),
    ({"deadline": -5.0}, "positive"),
    ({"budget": 0.0}, "positive"),
    ({"objective": "speed"}, "'cost' or 'makespan'"),
])
def test_malformed_objectives_are_refused(kwargs: dict[str, object], message: str) -> None:
    with pytest.raises(PlanError, match=message):
        Objective.of(**kwargs)  # type: ignore[arg-type]


def test_apply_plan_sets_placement_and_size_and_keeps_the_spill() -> None:
    wf = Workflow("w", (
        _t("a", 1.0), _t("b", 1.0), _t("c", 1.0, placement=Placement.FUNCTION),
        Task(id="d", command=("d",), resources=Resources(timeout_s=3000.0)),
    ))
    plan = Plan("p", {
        "a": Choice(FUNCTION, 3008, 0.0, 2048), "b": Choice(CONTAINER, 4096, 2.0),
        "c": Choice(FUNCTION, 256), "d": Choice(FUNCTION, 512),
    })
    out = {t.id: t for t in apply_plan(wf, plan).tasks}
    assert out["a"].placement is Placement.AUTO  # a function first, a container if it hits a limit
    assert out["a"].resources.memory_mb == 3008 and out["a"].resources.disk_mb == 2048
    assert out["a"].resources.cpus == 2.0  # the spill's container: at least the function's 1.7 vCPU
    assert out["b"].placement is Placement.CONTAINER and (out["b"].resources.cpus, out["b"].resources.memory_mb) == (
        2.0, 4096)
    assert out["c"].placement is Placement.FUNCTION and out["c"].resources.memory_mb == 256
    assert out["d"].resources.timeout_s == 900.0  # a function's own limit
    validate(apply_plan(wf, plan))
    from chalicelib.engine.placement import initial_placement
    assert [initial_placement(out[t]) for t in "abcd"] == ["function", "container", "function", "function"]


def test_apply_plan_refuses_plans_that_do_not_fit_the_workflow() -> None:
    wf = Workflow("w", (_t("a", 1.0, placement=Placement.FUNCTION), _t("b", 1.0)))
    with pytest.raises(WorkflowError) as err:
        apply_plan(wf, Plan("p", {"a": Choice(CONTAINER, 512, 0.25)}))
    text = str(err.value)
    assert "asks for a function" in text and "'b'" in text and "no placement" in text


def test_plans_round_trip_through_json() -> None:
    plan = make_plan(_fan(), deadline=200.0)
    again = Plan.from_dict(__import__("json").loads(plan.dumps()))
    assert again.choices == plan.choices and again.by_type == plan.by_type
    assert again.makespan_s == plan.makespan_s and again.cost.total == pytest.approx(plan.cost.total)
    with pytest.raises(WorkflowError, match="not a plan"):
        Plan.from_dict({"choices": {"a": {"placement": "gpu", "memory_mb": 1}}})


def test_plan_table_shows_every_type_and_the_single_kind_plans() -> None:
    text = plan_table(_fan(), deadline=120.0)
    assert "objective: deadline 120 s" in text and "prices us-east-1 read 2026-11-21" in text
    for word in ("split", "work", "merge", "chosen", "all-function", "all-container", "runtimes from: hint 8"):
        assert word in text


def test_a_split_policy_puts_the_longest_share_of_a_type_on_its_first_choice() -> None:
    wf = Workflow("split", tuple(_t(f"w{i}", float(i + 1), ttype="work") for i in range(8)))
    planner = Planner(wf)
    split = Split(Choice(FUNCTION, 1769), Choice(CONTAINER, 512, 0.25), 0.5)
    plan = planner.fixed("half", lambda _: split)
    on_functions = sorted(t for t, c in plan.choices.items() if c.placement == FUNCTION)
    assert on_functions == ["w4", "w5", "w6", "w7"]
    again = Plan.from_dict(__import__("json").loads(plan.dumps()))
    assert again.by_type == {"work": split}
    assert split.label() == "50% function 1769 MB, the rest container 0.25 vCPU/0.5 GB"
