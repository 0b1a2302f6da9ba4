"""The DAG picture (workflow/dag_picture.py): per task or per type, as DOT and as SVG."""

from __future__ import annotations

import xml.etree.ElementTree as ET  # nosec B405: parses SVG this test just wrote

import pytest

from chalicelib.errors import ConfigError
from chalicelib.workflow import dag_picture as dp
from chalicelib.workflow.formats import native
from chalicelib.workflow.model import Workflow


def _fan(width: int) -> Workflow:
    tasks = [{"id": "split", "command": ["split"], "outputs": [f"p{i}" for i in range(width)]}]
    tasks += [{"id": f"work-{i}", "command": ["work"], "inputs": [f"p{i}"], "outputs": [f"w{i}"]}
              for i in range(width)]
    tasks.append({"id": "merge", "command": ["merge"], "inputs": [f"w{i}" for i in range(width)], "outputs": ["m"]})
    return native.from_data({"name": "fan", "tasks": tasks})


def test_a_small_dag_is_drawn_task_by_task_in_levels() -> None:
    pic = dp.picture(_fan(3))
    assert not pic.collapsed and pic.tasks == 5
    assert {n.id: n.level for n in pic.nodes} == {"split": 0, "work-0": 1, "work-1": 1, "work-2": 1, "merge": 2}
    assert len(pic.edges) == 6
    dot = dp.to_dot(pic, "fan")
    assert '"split" -> "work-0";' in dot and '"work-2" -> "merge";' in dot


def test_a_large_dag_collapses_to_task_types_with_counts() -> None:
    pic = dp.picture(_fan(dp.COLLAPSE_OVER))
    assert pic.collapsed and pic.tasks == dp.COLLAPSE_OVER + 2
    assert sorted(n.label for n in pic.nodes) == ["merge \u00d71", "split \u00d71", f"work \u00d7{dp.COLLAPSE_OVER}"]
    assert {(e.parent, e.child): e.count for e in pic.edges} == {
        ("split", "work"): dp.COLLAPSE_OVER, ("work", "merge"): dp.COLLAPSE_OVER}
    assert not dp.picture(_fan(dp.COLLAPSE_OVER), by="task").collapsed
    assert dp.picture(_fan(2), by="type").collapsed


def test_the_svg_drawn_here_is_valid_and_has_a_box_and_an_arrow_per_node_and_edge() -> None:
    pic = dp.picture(_fan(4))
    root = ET.fromstring(dp.to_svg(pic, "fan <&>"))  # nosec B314: our own output
    ns = "{http://www.w3.org/2000/svg}"
    assert len(root.findall(f".//{ns}rect")) == len(pic.nodes)
    assert len(root.findall(f".//{ns}path[@marker-end]")) == len(pic.edges)
    boxes = [(float(r.get("x", 0)), float(r.get("y", 0)), float(r.get("width", 0)))
             for r in root.findall(f".//{ns}rect")]
    for i, (x, y, w) in enumerate(boxes):  # no two boxes of a row overlap
        assert all(not (y == y2 and x < x2 + w2 and x2 < x + w) for x2, y2, w2 in boxes[i + 1:])


def test_the_extension_picks_the_format_and_png_without_dot_says_what_to_do(monkeypatch: pytest.MonkeyPatch) -> None:
    assert [dp.format_of(p) for p in ("a.svg", "b.PNG", "c.dot", "d.gv")] == ["svg", "png", "dot", "dot"]
    with pytest.raises(ConfigError, match=r"\.png, \.svg or \.dot"):
        dp.format_of("dag.pdf")
    pic = dp.picture(_fan(2))
    monkeypatch.setattr(dp.shutil, "which", lambda *a, **k: None)  # no graphviz on PATH
    with pytest.raises(ConfigError, match="install graphviz"):
        dp.render(pic, "png")
    assert dp.render(pic, "svg").startswith(b"<svg")  # drawn here
    assert dp.render(pic, "dot").startswith(b'digraph "workflow"')


def test_a_wide_level_wraps_onto_lines_of_at_most_wrap_at_nodes() -> None:
    pic = dp.picture(_fan(30), by="task")
    root = ET.fromstring(dp.to_svg(pic))  # nosec B314: our own output
    ns = "{http://www.w3.org/2000/svg}"
    tops: dict[float, int] = {}
    for r in root.findall(f".//{ns}rect"):
        tops[float(r.get("y", 0))] = tops.get(float(r.get("y", 0)), 0) + 1
    assert sorted(tops.values()) == [1, 1, 6, dp.WRAP_AT, dp.WRAP_AT]  # split, 12 + 12 + 6 workers, merge
    assert float(root.get("width", 0)) < 2500
