from __future__ import annotations

import json

from chalicelib.workflow.formats import loads
from chalicelib.workflow.graph import build_graph, find_cycle, summarize, topological_order


def diamond():
    return loads(json.dumps({"name": "d", "tasks": [
        {"id": "a", "command": ["gen"], "inputs": ["seed"], "outputs": ["x", "y"]},
        {"id": "b", "command": ["f"], "inputs": ["x"], "outputs": ["bx"]},
        {"id": "c", "command": ["f"], "inputs": ["y", "x"], "outputs": ["cy"]},
        {"id": "d", "command": ["join"], "inputs": ["bx", "cy", "ref"], "after": ["a"]},
    ]}))


def test_summary_of_a_diamond() -> None:
    s = summarize(diamond())
    # edges are distinct task pairs: a->b, a->c (two files, one edge), b->d, c->d, a->d
    assert (s.tasks, s.edges, s.levels, s.max_width, s.critical_path_length) == (4, 5, 3, 2, 3)
    assert s.task_types == {"f": 2, "gen": 1, "join": 1}
    assert s.external_inputs == ["seed", "ref"]


def test_deep_chain_needs_no_recursion() -> None:
    n = 50_000
    tasks = [{"id": f"t{i}", "command": ["true"], **({"after": [f"t{i - 1}"]} if i else {})} for i in range(n)]
    wf = loads(json.dumps({"name": "chain", "tasks": tasks}))
    graph = build_graph(wf)
    assert find_cycle(graph) is None
    order = topological_order(graph)
    assert order is not None and order[0] == "t0" and order[-1] == f"t{n - 1}"
    assert summarize(wf).critical_path_length == n


def test_find_cycle_in_a_long_loop() -> None:
    n = 20_000
    tasks = [{"id": f"t{i}", "command": ["true"], "after": [f"t{(i - 1) % n}"]} for i in range(n)]
    cycle = find_cycle(build_graph(loads(json.dumps({"name": "loop", "tasks": tasks}))))
    assert cycle is not None and cycle[0] == cycle[-1] and len(cycle) == n + 1
