"""The simulator follows the coordinator's deployed event source mapping (app.py, wiring.py):
a batching window holds every lone event, a full batch goes at once, and with the deployed
setting a hop of a chain of warm functions costs at most 0.2 s of orchestration."""

from __future__ import annotations

from typing import Any

from chalicelib.planner.plans import FUNCTION, Choice, Plan
from chalicelib.planner.platform import Latencies, Platform
from chalicelib.planner.simulator import simulate
from chalicelib.workflow.model import Placement, Resources, Task, Workflow


def _chain(n: int, runtime: float = 1.0) -> Workflow:
    tasks = [Task(id=f"t{i:03d}", command=("t",), inputs=(f"f{i - 1}",) if i else (), outputs=(f"f{i}",),
                  placement=Placement.FUNCTION, resources=Resources(memory_mb=1769, cpus=1.0),
                  hints={"runtime_s": runtime}) for i in range(n)]
    return Workflow("chain", tuple(tasks))


def _fan(width: int) -> Workflow:
    """root -> `width` children -> join, every task 1 s."""
    def task(tid: str, inputs: tuple[str, ...]) -> Task:
        return Task(id=tid, command=("t",), inputs=inputs, outputs=(f"{tid}.out",), placement=Placement.FUNCTION,
                    hints={"runtime_s": 1.0})
    kids = [task(f"k{i}", ("root.out",)) for i in range(width)]
    return Workflow("fan", (task("root", ()), *kids, task("join", tuple(f"{k.id}.out" for k in kids))))


def _declared(wf: Workflow) -> Plan:
    return Plan("declared", {t.id: Choice(FUNCTION, 1769) for t in wf.tasks})


def _platform(window: float, **lat: Any) -> Platform:
    return Platform(latencies=Latencies(events_batch_window_s=window, **lat))


def test_the_simulator_models_the_window_app_py_deploys() -> None:
    import app

    (mapping,) = [s for s in app.app.event_sources if getattr(s, "name", "") == "coordinator"]
    deployed = Platform().latencies
    assert mapping.maximum_batching_window_in_seconds == deployed.events_batch_window_s
    assert mapping.batch_size == deployed.events_batch_size


def test_a_one_second_window_costs_every_hop_of_a_chain_more_than_a_second() -> None:
    wf = _chain(20)
    held = simulate(wf, _declared(wf), _platform(1.0))
    assert held.state == "SUCCEEDED"
    assert (held.makespan_s - 20 * 1.0) / 20 > 1.0


def test_as_deployed_a_warm_chain_hop_costs_at_most_0_2_s() -> None:
    wf = _chain(100)
    result = simulate(wf, _declared(wf), Platform())
    assert result.state == "SUCCEEDED"
    assert result.usage.cold_starts == 1
    assert (result.makespan_s - 100 * 1.0) / 100 <= 0.2


def test_a_full_batch_is_not_held_for_the_window() -> None:
    """With a 5 s window: Start waits 0-5; the root's TaskStarted (at 5) opens a window its
    completion (at 6) joins, both handed over at 10; the ten children's starts (10) and
    completions (11) fill a batch each and go at once; the join's TaskStarted (11) opens a
    window its completion (12) joins: the run ends at 16 instead of 3."""
    lat: dict[str, Any] = {"function_cold_s": 0.0, "function_warm_s": 0.0, "invoke_s": 0.0, "event_s": 0.0,
                           "coordinator_s": 0.0, "s3_request_s": 0.0}
    wf = _fan(10)
    base = simulate(wf, _declared(wf), _platform(0.0, **lat))
    held = simulate(wf, _declared(wf), _platform(5.0, **lat))
    assert base.makespan_s == 3.0
    assert held.makespan_s == 16.0
