"""The report's data and arithmetic: no chart library involved."""

from __future__ import annotations

import itertools
from typing import Any

import pytest

from chalicelib.report.cost import CostModel
from chalicelib.report.model import from_parts
from chalicelib.report.timeline import concurrency, lanes, type_stats

T0 = 1_000_000.0


def task(tid: str, state: str = "SUCCEEDED", start: float | None = 0.0, end: float | None = 1.0,
         placement: str = "function", **extra: Any) -> dict[str, Any]:
    return {"id": tid, "state": state, "attempts": extra.pop("attempts", 1), "placement": placement,
            "started_at": None if start is None else T0 + start, "finished_at": None if end is None else T0 + end,
            **extra}


def node(tid: str, ttype: str, parents: tuple[str, ...] = (), level: int = 0, memory_mb: int = 1024,
         cpus: float = 1.0) -> dict[str, Any]:
    return {"id": tid, "type": ttype, "parents": list(parents), "level": level, "memory_mb": memory_mb, "cpus": cpus}


def run_of(tasks: list[dict[str, Any]], nodes: list[dict[str, Any]], finished: float | None = 10.0,
           state: str = "SUCCEEDED", now: float | None = None) -> Any:
    run = {"run_id": "r1", "name": "demo", "state": state, "created_at": T0,
           "finished_at": None if finished is None else T0 + finished}
    return from_parts(run, tasks, {"tasks": nodes}, now=None if now is None else T0 + now)


def test_times_of_an_earlier_attempt_are_dropped_while_the_task_waits_for_its_next() -> None:
    data = run_of([task("a", "READY", 1.0, 2.0, attempts=2), task("b", "RUNNING", 3.0, 2.5),
                   task("c", "DISPATCHED", 1.0, 2.0)],
                  [node("a", "x"), node("b", "x"), node("c", "x")], finished=None, state="RUNNING", now=5.0)
    rows = data.by_id()
    assert rows["a"].started_at is None and rows["a"].finished_at is None and rows["a"].attempts == 2
    assert rows["c"].started_at is None
    assert rows["b"].started_at == T0 + 3.0 and rows["b"].finished_at is None  # still running: no end yet
    assert data.end == T0 + 5.0  # the bars of running tasks end at "now"


def test_graph_gives_type_level_parents_and_resources() -> None:
    data = run_of([task("a"), task("b", start=1.0, end=2.0)],
                  [node("a", "split", memory_mb=2048), node("b", "merge", ("a",), 1, cpus=2.0)])
    b = data.by_id()["b"]
    assert (b.type, b.level, b.parents, b.cpus) == ("merge", 1, ("a",), 2.0)
    assert data.by_id()["a"].memory_mb == 2048
    assert data.ready_at(b) == T0 + 1.0 and data.ready_at(data.by_id()["a"]) == T0


def test_lanes_pack_each_type_into_the_fewest_rows_without_overlap() -> None:
    # four "w" tasks: at most two overlap at once -> two lanes; "m" gets its own group after
    tasks = [task("w1", start=0, end=2), task("w2", start=1, end=3), task("w3", start=2, end=4),
             task("w4", start=3.5, end=5), task("m", start=5, end=6)]
    nodes = [node(t["id"], "w" if t["id"].startswith("w") else "m") for t in tasks]
    lane_list, where = lanes(run_of(tasks, nodes))
    assert [(lane.group, lane.index) for lane in lane_list] == [("w", 0), ("w", 1), ("m", 0)]
    assert where["w1", 1] == where["w3", 1] and where["w2", 1] != where["w1", 1]
    for lane in set(where.values()):
        spans = sorted((t["started_at"], t["finished_at"]) for t in tasks if where[t["id"], 1] == lane)
        assert all(a[1] <= b[0] for a, b in itertools.pairwise(spans)), spans


def test_worker_rows_group_by_placement_and_unknown_modes_are_refused() -> None:
    tasks = [task("a", placement="function"), task("b", placement="container"), task("c", placement="function")]
    lane_list, _ = lanes(run_of(tasks, [node(t["id"], "x") for t in tasks]), rows="worker")
    assert sorted({lane.group for lane in lane_list}) == ["container", "function"]
    with pytest.raises(ValueError, match="rows must be one of"):
        lanes(run_of(tasks, []), rows="colour")


def test_concurrency_counts_running_tasks_per_placement() -> None:
    tasks = [task("a", start=0, end=4), task("b", start=1, end=3, placement="container"),
             task("c", start=2, end=3), task("never", "UPSTREAM_FAILED", None, 3.0)]
    steps = concurrency(run_of(tasks, [node(t["id"], "x") for t in tasks], finished=4.0))
    at = {t: {p: v[i] for p, v in steps.values.items()} for i, t in enumerate(steps.times)}
    assert at[0.0] == {"container": 0, "function": 1}
    assert at[1.0] == {"container": 1, "function": 1}
    assert at[2.0] == {"container": 1, "function": 2}
    assert at[3.0] == {"container": 0, "function": 1}
    assert at[4.0] == {"container": 0, "function": 0}
    assert steps.peak() == 3


def test_type_stats_sum_time_gb_seconds_and_price_functions_and_containers() -> None:
    tasks = [task("f1", start=0, end=2, duration_s=2.0), task("f2", start=0, end=4, duration_s=4.0),
             task("c1", start=0, end=10, placement="container", duration_s=10.0),
             task("bad", "FAILED", 1, 2, duration_s=1.0, attempts=3), task("hit", "CACHED", 0, 0.01)]
    nodes = [node("f1", "fn", memory_mb=2048), node("f2", "fn", memory_mb=2048),
             node("c1", "ctr", memory_mb=4096, cpus=1.0), node("bad", "fn", memory_mb=2048), node("hit", "fn")]
    stats = {s.type: s for s in type_stats(run_of(tasks, nodes), CostModel())}
    fn, ctr = stats["fn"], stats["ctr"]
    assert (fn.tasks, fn.ok, fn.failed, fn.cached, fn.retried) == (4, 3, 1, 1, 1)
    assert fn.seconds == pytest.approx(7.0) and fn.max_s == pytest.approx(4.0)
    assert fn.gb_s == pytest.approx(2.0 * 7.0)
    from chalicelib.planner.pricing import PRICES, fargate_size

    lam = PRICES.functions
    expected_fn = sum(lam.invocation_cost(2048, s) for s in (2.0, 4.0, 1.0))  # the cached task costs nothing
    assert fn.cost == pytest.approx(expected_fn)
    vcpu, mem = fargate_size(1.0, 4096)
    assert ctr.cost == pytest.approx(PRICES.containers.rate_per_s(vcpu, mem) * 10.0)
    assert ctr.placements == {"container": 1}


def test_without_a_price_table_cost_is_not_invented() -> None:
    costs = CostModel(prices=None)
    costs.prices = None  # as when chalicelib/planner/pricing.py is absent
    stats = type_stats(run_of([task("a", duration_s=1.0)], [node("a", "x")]), costs)
    assert stats[0].cost is None and stats[0].gb_s == pytest.approx(1.0)
    assert "GB-seconds only" in costs.note()


def test_failed_attempts_that_were_retried_are_drawn_counted_and_timed() -> None:
    # four 1 s tasks on 2 places; "a" failed once at 0-1 s and ran again at 1.8-2.8 s
    tries = [{"attempt": 1, "started_at": T0, "finished_at": T0 + 1.0, "duration_s": 1.0, "reason": "NONZERO_EXIT"}]
    tasks = [task("a", start=1.8, end=2.8, attempts=2, tries=tries), task("b", start=0, end=1),
             task("c", start=1, end=2), task("d", start=1, end=1.8)]
    data = run_of(tasks, [node(t["id"], "x") for t in tasks], finished=3.0)
    spans = data.spans()
    assert len(spans) == 5 and [s.attempts for s in spans if s.id == "a"] == [1, 2]
    assert spans[0].state == "FAILED" and spans[0].reason == "NONZERO_EXIT"
    lane_list, where = lanes(data)
    assert len(where) == 5 and len(lane_list) == 2  # the failed try has a lane of its own; still two places
    assert where["a", 1] != where["b", 1]
    assert concurrency(data).peak() == 2
    (stats,) = type_stats(data, CostModel())
    assert stats.seconds == pytest.approx(5.0 - 0.2)  # the failed try's second counts
    assert stats.retried == 1 and stats.tasks == 4


def test_a_try_label_near_the_axis_goes_right_of_its_bar() -> None:
    from chalicelib.report.charts import try_label_anchor

    assert try_label_anchor(0.05, 1.0, 10.0) == (1.0, 2, "left")  # would overlap the lane labels
    assert try_label_anchor(5.0, 6.0, 10.0) == (5.0, -2, "right")
