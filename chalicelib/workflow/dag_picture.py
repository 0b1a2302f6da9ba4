"""A workflow's DAG as a picture: Graphviz DOT text, or SVG drawn here (no Graphviz needed).

Small DAGs are drawn task by task. A large one (Montage's thousands of tasks) is collapsed to
one node per task type, labelled with its count, and one edge per pair of types that depend
on each other, labelled with the number of task-to-task edges it stands for. PNG needs
Graphviz's `dot` (`updraft show --dag` renders the DOT text with it).

The SVG layout is layered: a task's row is its level (roots on top), its place in the row
the mean place of its parents (one barycentre pass, which untangles most crossings of the
fan-out/fan-in shapes scientific workflows have).
"""

from __future__ import annotations

import os
import shutil
import subprocess  # nosec B404: runs Graphviz's `dot`, an argv with no shell, on text we wrote
from collections.abc import Sequence
from html import escape

from msgspec import Struct

from chalicelib.errors import ConfigError
from chalicelib.workflow.graph import build_graph, levels, topological_order
from chalicelib.workflow.model import Workflow

COLLAPSE_OVER = 120  # tasks: above this, `auto` draws one node per task type
FORMATS = ("dot", "svg", "png")
PALETTE = ("#4e79a7", "#f28e2b", "#59a14f", "#e15759", "#76b7b2", "#edc948", "#b07aa1", "#ff9da7",
           "#9c755f", "#bab0ac")


class Node(Struct, frozen=True):
    id: str
    label: str
    group: str  # the task type (its colour)
    level: int


class Edge(Struct, frozen=True):
    parent: str
    child: str
    count: int = 1  # task-to-task edges it stands for (collapsed pictures)


class Picture(Struct, frozen=True):
    nodes: list[Node]
    edges: list[Edge]
    tasks: int
    collapsed: bool


def picture(workflow: Workflow, by: str = "auto") -> Picture:
    """The nodes and edges to draw: per task, or (by "type", or "auto" above COLLAPSE_OVER
    tasks) per task type."""
    if by not in ("auto", "task", "type"):
        raise ConfigError(f"--dag-by takes auto, task or type, not {by!r}")
    graph = build_graph(workflow)
    order = topological_order(graph) or list(graph.ids)
    level = levels(graph, order)
    types = {t.id: t.task_type for t in workflow.tasks}
    if by == "task" or (by == "auto" and len(order) <= COLLAPSE_OVER):
        nodes = [Node(tid, tid, types[tid], level[tid]) for tid in order]
        edges = [Edge(p, tid) for tid in order for p in graph.parents[tid]]
        return Picture(nodes, edges, len(order), collapsed=False)
    count: dict[str, int] = {}
    first_level: dict[str, int] = {}
    for tid in order:
        ttype = types[tid]
        count[ttype] = count.get(ttype, 0) + 1
        first_level[ttype] = min(first_level.get(ttype, level[tid]), level[tid])
    pairs: dict[tuple[str, str], int] = {}
    for tid in order:
        for p in graph.parents[tid]:
            if types[p] != types[tid]:
                pairs[(types[p], types[tid])] = pairs.get((types[p], types[tid]), 0) + 1
    nodes = [Node(t, f"{t} \u00d7{n}", t, first_level[t]) for t, n in count.items()]
    return Picture(nodes, [Edge(a, b, n) for (a, b), n in pairs.items()], len(order), collapsed=True)


def _colours(nodes: Sequence[Node]) -> dict[str, str]:
    groups: dict[str, str] = {}
    for n in nodes:
        groups.setdefault(n.group, PALETTE[len(groups) % len(PALETTE)])
    return groups


def _quote(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def to_dot(pic: Picture, name: str = "workflow") -> str:
    colour = _colours(pic.nodes)
    lines = [f"digraph {_quote(name)} {{", "  rankdir=TB;",
             '  node [shape=box, style="rounded,filled", fontname="Helvetica", fontsize=10, fontcolor=white];',
             '  edge [color="#57606a", arrowsize=0.6, fontsize=9];']
    for n in pic.nodes:
        lines.append(f"  {_quote(n.id)} [label={_quote(n.label)}, fillcolor={_quote(colour[n.group])}];")
    for e in pic.edges:
        extra = f" [label={_quote(str(e.count))}]" if pic.collapsed else ""
        lines.append(f"  {_quote(e.parent)} -> {_quote(e.child)}{extra};")
    lines.append("}")
    return "\n".join(lines) + "\n"


# ---- SVG, laid out here -------------------------------------------------------------------

ROW_H, LINE_H, GAP_X, NODE_H, CHAR_W, PAD = 70, 36, 16, 26, 7.0, 20
WRAP_AT = 12  # nodes on one line of a level


def _width(label: str) -> float:
    return max(40.0, len(label) * CHAR_W + 16)


def _wrapped(row: list[Node]) -> list[list[Node]]:
    """A level's nodes in lines of at most WRAP_AT (a 40-wide fan stays readable)."""
    return [row[i:i + WRAP_AT] for i in range(0, len(row), WRAP_AT)] or [[]]


def _line_width(line: list[Node]) -> float:
    return sum(_width(n.label) for n in line) + GAP_X * max(0, len(line) - 1)


def _layout(pic: Picture) -> tuple[dict[str, tuple[float, float, float]], float, float]:
    """Each node's (x centre, y top, width), and the drawing's width and height. A level wider
    than WRAP_AT nodes wraps onto more lines (LINE_H apart) before the next level."""
    rows: dict[int, list[Node]] = {}
    for n in pic.nodes:
        rows.setdefault(n.level, []).append(n)
    parents: dict[str, list[str]] = {}
    for e in pic.edges:
        parents.setdefault(e.child, []).append(e.parent)
    place: dict[str, float] = {}  # where a node sits across the drawing (0..1), for its children
    pos: dict[str, tuple[float, float, float]] = {}
    total = max((_line_width(line) for row in rows.values() for line in _wrapped(row)), default=0.0)
    y = float(PAD)
    for lvl in sorted(rows):
        row = rows[lvl]

        def centre(n: Node) -> float:
            known = [place[p] for p in parents.get(n.id, ()) if p in place]
            return sum(known) / len(known) if known else 0.5

        row.sort(key=lambda n: (centre(n), n.group, n.id))
        for line in _wrapped(row):
            x = PAD + (total - _line_width(line)) / 2
            for n in line:
                w = _width(n.label)
                pos[n.id] = (x + w / 2, y, w)
                place[n.id] = (x + w / 2 - PAD) / max(total, 1.0)
                x += w + GAP_X
            y += LINE_H
        y += ROW_H - LINE_H
    height = y - (ROW_H - LINE_H) - LINE_H + NODE_H + PAD
    return pos, total + PAD * 2 + ROW_H, height


def to_svg(pic: Picture, name: str = "workflow") -> str:
    pos, width, height = _layout(pic)
    level = {n.id: n.level for n in pic.nodes}
    colour = _colours(pic.nodes)
    out = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{width:.0f}" height="{height:.0f}" '
           f'viewBox="0 0 {width:.0f} {height:.0f}" font-family="Helvetica,Arial,sans-serif" font-size="11">',
           f"<title>{escape(name)}: {pic.tasks} tasks</title>",
           '<defs><marker id="arrow" viewBox="0 0 8 8" refX="8" refY="4" markerWidth="6" markerHeight="6" '
           'orient="auto"><path d="M0,0 L8,4 L0,8 z" fill="#57606a"/></marker></defs>',
           '<g fill="none" stroke="#57606a" stroke-width="1">']
    labels = []
    for e in pic.edges:
        (x1, y1, w1), (x2, y2, w2) = pos[e.parent], pos[e.child]
        y1 += NODE_H
        mid = (y1 + y2) / 2
        if level[e.child] - level[e.parent] > 1:  # it skips levels: bow out to the right, past those between
            bow = max(x1 + w1 / 2, x2 + w2 / 2) + ROW_H
            path = f"M{x1:.1f},{y1:.1f} C{bow:.1f},{y1 + ROW_H:.1f} {bow:.1f},{y2 - ROW_H:.1f} {x2:.1f},{y2:.1f}"
            mid_x = (x1 + x2) / 2 + 0.75 * (bow - (x1 + x2) / 2)  # a cubic with both controls at `bow` peaks there
        else:
            path = f"M{x1:.1f},{y1:.1f} C{x1:.1f},{mid:.1f} {x2:.1f},{mid:.1f} {x2:.1f},{y2:.1f}"
            mid_x = (x1 + x2) / 2
        out.append(f'<path d="{path}" marker-end="url(#arrow)"/>')
        if pic.collapsed:
            labels.append(f'<text x="{mid_x + 4:.1f}" y="{mid:.1f}" fill="#57606a">{e.count}</text>')
    out.append("</g>")
    out.extend(labels)
    for n in pic.nodes:
        x, y, w = pos[n.id]
        out.append(f'<g><title>{escape(n.id)} ({escape(n.group)})</title>'
                   f'<rect x="{x - w / 2:.1f}" y="{y:.1f}" width="{w:.1f}" height="{NODE_H}" rx="6" '
                   f'fill="{colour[n.group]}"/>'
                   f'<text x="{x:.1f}" y="{y + NODE_H / 2 + 4:.1f}" text-anchor="middle" fill="#ffffff">'
                   f"{escape(n.label)}</text></g>")
    out.append("</svg>")
    return "\n".join(out) + "\n"


def format_of(path: str) -> str:
    """The picture format a file name asks for, by its extension."""
    ext = path.rsplit(".", 1)[-1].lower() if "." in path else ""
    fmt = {"gv": "dot"}.get(ext, ext)
    if fmt not in FORMATS:
        raise ConfigError(f"--dag {path}: name a .png, .svg or .dot file (the extension picks the format)")
    return fmt


def render(pic: Picture, fmt: str, name: str = "workflow", dot: str | None = None) -> bytes:
    """The picture's bytes in `fmt`. SVG and PNG through Graphviz's `dot` when it is on PATH
    (`dot`: its path, found when None); SVG is drawn here without it; PNG without it is a
    ConfigError saying how to get it."""
    text = to_dot(pic, name)
    if fmt == "dot":
        return text.encode()
    dot = dot if dot is not None else shutil.which("dot")
    if dot is None:
        if fmt == "svg":
            return to_svg(pic, name).encode()
        raise ConfigError("a PNG needs Graphviz's `dot`, which is not on PATH: install graphviz "
                          "(scripts/install-tools graphviz, or apt-get install graphviz), or ask for "
                          "an .svg or .dot file instead")
    proc = subprocess.run([dot, f"-T{fmt}"], input=text.encode(), capture_output=True, timeout=300,  # nosec B603
                          check=False)
    if proc.returncode != 0:
        raise ConfigError(f"graphviz `dot -T{fmt}` failed (exit {proc.returncode}): "
                          f"{proc.stderr.decode(errors='replace').strip()[:300]}")
    return proc.stdout


def write(path: str, data: bytes) -> None:
    """Write the picture whole or not at all (a temporary file renamed into place)."""
    tmp = f"{path}.tmp-{os.getpid()}"
    try:
        with open(tmp, "wb") as fh:
            fh.write(data)
        os.replace(tmp, path)
    except OSError as exc:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise ConfigError(f"cannot write {path}: {exc.strerror or exc}; name a file in an existing folder") from None
