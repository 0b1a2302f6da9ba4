"""The report's pictures, drawn with matplotlib (an optional extra, imported on first use).

Each function takes RunData and returns PNG bytes. Figures are built with
matplotlib.figure.Figure directly (no pyplot): no global state, safe in a server thread.
"""

from __future__ import annotations

import io
import sys
from typing import Any

from chalicelib.engine.states import TASK_STATES, TaskState
from chalicelib.errors import ConfigError
from chalicelib.report.model import RunData, TaskRow
from chalicelib.report.timeline import SpanKey, Steps, concurrency, lanes, span_key

INSTALL = f"{sys.executable} -m pip install 'matplotlib>=3.7'"
PLACEMENT_COLOURS = {"function": "#4c78a8", "container": "#f58518", "local": "#54a24b"}
OTHER_COLOUR = "#9d9d9d"
STATE_COLOURS = {s.value: info.colour for s, info in TASK_STATES.items()}  # in display order
FAILED_EDGE = "#b30000"
DPI = 110


class ChartsUnavailableError(ConfigError):
    """matplotlib is not installed; the message is the command that installs it."""


def _figure(width: float, height: float) -> Any:
    try:
        from matplotlib.figure import Figure
    except ImportError:
        raise ChartsUnavailableError(
            f"`updraft report` draws its charts with matplotlib, which is not installed. Install it with:\n"
            f"  {INSTALL}") from None
    return Figure(figsize=(width, height), layout="constrained")


def _png(fig: Any) -> bytes:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=DPI)
    return buf.getvalue()


def _clamp(value: float, low: float, high: float) -> float:
    return max(low, min(high, value))


# ---- Gantt ------------------------------------------------------------------------------------

def gantt(run: RunData, rows: str = "type") -> bytes:
    """One bar per task attempt that ran, rows packed by task type (or worker), coloured by placement.

    Cached tasks are hatched with a diamond, failed ones hatched with a red edge and a cross,
    retried ones carry their attempt count; a thin grey line before a bar is the time from when
    the task could run (its last parent finished) to when it started: queueing, retries, backoff.
    """
    lane_list, where = lanes(run, rows)
    fig = _figure(12.0, _clamp(1.4 + 0.24 * len(lane_list), 3.0, 24.0))
    ax = fig.add_subplot()
    t0, wall = run.created_at, max(run.wall_s, 1e-3)
    min_w = wall * 0.003
    drawn = [t for t in run.spans() if span_key(t) in where]  # every attempt, failed tries included
    if len(drawn) <= DETAIL_LIMIT:
        _wait_lines(ax, run, drawn, where, t0)
    groups: dict[tuple[str, str], list[TaskRow]] = {}
    for t in drawn:
        kind = "cached" if t.cached else "failed" if t.failed or t.state == TaskState.CANCELLED else "ok"
        groups.setdefault((t.placement, kind), []).append(t)
    for (placement, kind), tasks in sorted(groups.items()):
        _bars(ax, tasks, where, t0, run.end, min_w, placement, kind)
    _markers(ax, drawn, where, t0, run.end)
    _lane_axis(ax, lane_list)
    ax.set_xlim(0, wall * 1.02)
    ax.set_xlabel("seconds since the run was submitted")
    ax.set_title(f"{run.name or run.run_id}: {len(drawn)} task attempts, {run.state}, {wall:.1f} s", loc="left")
    _gantt_legend(ax, run, drawn)
    return _png(fig)


def _bars(ax: Any, tasks: list[TaskRow], where: dict[SpanKey, int], t0: float, end: float, min_w: float,
          placement: str, kind: str) -> None:
    """One collection of rectangles per style: thousands of bars draw as fast as a few."""
    from matplotlib.collections import PolyCollection

    colour = PLACEMENT_COLOURS.get(placement, OTHER_COLOUR)
    verts = []
    for t in tasks:
        left = (t.started_at or t0) - t0
        right = left + max(min_w, (t.finished_at if t.finished_at is not None else end) - (t.started_at or t0))
        y = where[span_key(t)]
        verts.append([(left, y - 0.36), (right, y - 0.36), (right, y + 0.36), (left, y + 0.36)])
    style: dict[str, Any] = {"facecolors": colour, "edgecolors": "white", "linewidths": 0.6}
    if kind == "cached":
        style.update(alpha=0.55, hatch="////", edgecolors=colour)
    elif kind == "failed":
        style.update(hatch="xxx", edgecolors=FAILED_EDGE, linewidths=1.2)
    ax.add_collection(PolyCollection(verts, **style))


def _wait_lines(ax: Any, run: RunData, drawn: list[TaskRow], where: dict[SpanKey, int], t0: float) -> None:
    from matplotlib.collections import LineCollection

    segments = []
    firsts = {t.id: t for t in reversed(drawn)}  # a task's first attempt: a retry's wait is its backoff
    for t in drawn:
        if firsts[t.id] is not t:
            continue
        ready = run.ready_at(t)
        if ready is not None and t.started_at is not None and t.started_at - ready > run.wall_s * 0.005:
            y = where[span_key(t)]
            segments.append([(ready - t0, y), (t.started_at - t0, y)])
    if segments:
        ax.add_collection(LineCollection(segments, colors="#8c8c8c", linewidths=0.8, linestyles="dotted"))


DETAIL_LIMIT = 500  # above this many bars, per-task marks would only be ink: keep the essential ones
LABEL_LIMIT = 40


def _markers(ax: Any, drawn: list[TaskRow], where: dict[SpanKey, int], t0: float, end: float) -> None:
    crowded = len(drawn) > DETAIL_LIMIT
    failed = [t for t in drawn if t.failed]
    if failed:
        ax.scatter([(t.finished_at or end) - t0 for t in failed], [where[span_key(t)] for t in failed],
                   marker="x", color=FAILED_EDGE, s=12 if crowded else 28, linewidths=1.2 if crowded else 1.6, zorder=3)
    cached = [t for t in drawn if t.cached]
    if cached and not crowded:
        ax.scatter([(t.started_at or t0) - t0 for t in cached], [where[span_key(t)] for t in cached],
                   marker="D", color="black", s=14, zorder=3)
    retried = [t for t in drawn if t.retried]
    if len(retried) <= LABEL_LIMIT:
        wall = max(end - t0, 1e-3)
        for t in retried:
            left = (t.started_at or t0) - t0
            right = (t.finished_at if t.finished_at is not None else end) - t0
            x, dx, ha = try_label_anchor(left, right, wall)
            ax.annotate(f"try {t.attempts}", (x, where[span_key(t)]), xytext=(dx, 0), textcoords="offset points",
                        ha=ha, va="center", fontsize=7, color="#333333", annotation_clip=True)
    else:
        ax.scatter([(t.started_at or t0) - t0 for t in retried], [where[span_key(t)] for t in retried],
                   marker=">", color="#333333", s=10, zorder=3)


def try_label_anchor(left: float, right: float, wall: float) -> tuple[float, int, str]:
    """Where a "try N" label goes (x, offset in points, alignment): left of its bar, or right
    of it when the bar starts so near the axis that the label would run over the lane labels."""
    if left > 0.08 * wall:
        return left, -2, "right"
    return right, 2, "left"


def _lane_axis(ax: Any, lane_list: list[Any]) -> None:
    ax.set_ylim(len(lane_list) - 0.5, -0.5)
    ticks, labels, start = [], [], 0
    for i, lane in enumerate([*lane_list, None]):
        if lane is None or lane.index == 0:
            if i > 0:
                prev = lane_list[i - 1]
                ticks.append((start + i - 1) / 2)
                count = i - start
                labels.append(prev.group if count == 1 else f"{prev.group} (x{count})")
                if lane is not None:
                    ax.axhline(i - 0.5, color="#cccccc", linewidth=0.6)
            start = i
    ax.set_yticks(ticks, labels, fontsize=8 if len(ticks) < 40 else 6)
    ax.tick_params(axis="y", length=0)
    ax.grid(axis="x", color="#eeeeee", linewidth=0.6)
    ax.set_axisbelow(True)


def _gantt_legend(ax: Any, run: RunData, drawn: list[TaskRow]) -> None:
    from matplotlib.lines import Line2D
    from matplotlib.patches import Patch

    handles: list[Any] = [Patch(color=PLACEMENT_COLOURS.get(p, OTHER_COLOUR), label=p)
                          for p in sorted({t.placement for t in drawn})]
    if any(t.cached for t in drawn):
        handles.append(Patch(facecolor="white", edgecolor="black", hatch="////", label="cached"))
    if any(t.failed or t.state == TaskState.CANCELLED for t in drawn):
        handles.append(Patch(facecolor="white", edgecolor=FAILED_EDGE, hatch="xxx", label="failed / cancelled"))
    retried = sum(t.retried for t in drawn)
    if retried and retried <= LABEL_LIMIT:
        handles.append(Line2D([], [], linestyle="none", marker="$n$", color="#333333", label="try n: retried"))
    elif retried:
        handles.append(Line2D([], [], linestyle="none", marker=">", color="#333333", label="retried"))
    if len(drawn) <= DETAIL_LIMIT:
        handles.append(Line2D([], [], color="#8c8c8c", linestyle="dotted", label="ready, not yet started"))
    ax.legend(handles=handles, loc="upper left", bbox_to_anchor=(1.0, 1.0), fontsize=8, frameon=False)


# ---- DAG --------------------------------------------------------------------------------------

def dag_layout(run: RunData) -> dict[str, tuple[float, float]]:
    """(level, position in level) per task; within a level, tasks sit near their parents."""
    levels: dict[int, list[TaskRow]] = {}
    for t in run.tasks:
        levels.setdefault(t.level, []).append(t)
    pos: dict[str, tuple[float, float]] = {}
    for level in sorted(levels):
        tasks = levels[level]

        def bary(t: TaskRow) -> tuple[float, str, str]:
            ys = [pos[p][1] for p in t.parents if p in pos]
            return (sum(ys) / len(ys) if ys else 0.5, t.type, t.id)

        ordered = sorted(tasks, key=bary)
        n = len(ordered)
        for i, t in enumerate(ordered):
            pos[t.id] = (float(level), (i + 0.5) / n)
    return pos


def dag(run: RunData) -> bytes:
    """The workflow's DAG, levels left to right, each task a dot coloured by its state."""
    from matplotlib.collections import LineCollection
    from matplotlib.patches import Patch

    pos = dag_layout(run)
    widths: dict[int, int] = {}
    for t in run.tasks:
        widths[t.level] = widths.get(t.level, 0) + 1
    n_levels, widest = len(widths), max(widths.values(), default=1)
    fig = _figure(_clamp(2.5 + 1.4 * n_levels, 6.0, 16.0), _clamp(1.5 + 0.22 * widest, 3.5, 11.0))
    ax = fig.add_subplot()
    segments = [[pos[p], pos[t.id]] for t in run.tasks for p in t.parents if p in pos]
    if segments:
        alpha = _clamp(30.0 / len(segments) ** 0.5, 0.08, 0.8)
        ax.add_collection(LineCollection(segments, colors="#777777", linewidths=0.6, alpha=alpha, zorder=1))
    size = _clamp(2400.0 / widest, 6.0, 160.0)
    for state, colour in STATE_COLOURS.items():
        members = [t for t in run.tasks if t.state == state]
        if members:
            ax.scatter([pos[t.id][0] for t in members], [pos[t.id][1] for t in members], s=size, color=colour,
                       edgecolors="#333333", linewidths=0.4, zorder=2)
    if len(run.tasks) <= 40:
        for t in run.tasks:
            ax.annotate(t.id, pos[t.id], xytext=(0, 7), textcoords="offset points", ha="center", fontsize=7)
    _level_labels(ax, run)
    ax.set_xlim(-0.6, max(n_levels - 1, 0) + 0.6)
    ax.set_ylim(1.0, -0.16)
    ax.set_axis_off()
    present = [s for s in STATE_COLOURS if any(t.state == s for t in run.tasks)]
    ax.legend(handles=[Patch(color=STATE_COLOURS[s], label=s.lower()) for s in present],
              loc="upper left", bbox_to_anchor=(1.0, 1.0), fontsize=8, frameon=False)
    ax.set_title(f"DAG: {len(run.tasks)} tasks, {len(segments)} edges, {n_levels} levels", loc="left")
    return _png(fig)


def _level_labels(ax: Any, run: RunData) -> None:
    """Each level's task types at its top (what the columns are, when dots are too many to name)."""
    types: dict[int, dict[str, int]] = {}
    for t in run.tasks:
        types.setdefault(t.level, {}).setdefault(t.type, 0)
        types[t.level][t.type] += 1
    for level, counts in types.items():
        top = sorted(counts.items(), key=lambda kv: -kv[1])[:2]
        text = "\n".join(f"{name} x{n}" for name, n in top) + ("\n..." if len(counts) > 2 else "")
        ax.text(level, -0.02, text, ha="center", va="bottom", fontsize=7, color="#333333")


# ---- concurrency ------------------------------------------------------------------------------

def concurrency_chart(run: RunData) -> bytes:
    """Tasks running over time, stacked by placement."""
    steps: Steps = concurrency(run)
    fig = _figure(12.0, 3.2)
    ax = fig.add_subplot()
    times = [*steps.times, run.wall_s]
    base = [0] * len(times)
    for name, values in steps.values.items():
        top = [b + v for b, v in zip(base, [*values, values[-1] if values else 0], strict=True)]
        ax.fill_between(times, base, top, step="post", color=PLACEMENT_COLOURS.get(name, OTHER_COLOUR),
                        alpha=0.85, label=name, linewidth=0)
        base = top
    ax.set_xlim(0, max(run.wall_s, 1e-3) * 1.02)
    ax.set_ylim(0, max(steps.peak(), 1) * 1.15)
    ax.set_xlabel("seconds since the run was submitted")
    ax.set_ylabel("tasks running")
    from matplotlib.ticker import MaxNLocator

    ax.yaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_title(f"Concurrency: peak {steps.peak()} tasks", loc="left")
    ax.grid(color="#eeeeee", linewidth=0.6)
    ax.set_axisbelow(True)
    if steps.values:
        ax.legend(loc="upper left", bbox_to_anchor=(1.0, 1.0), fontsize=8, frameon=False)
    return _png(fig)
