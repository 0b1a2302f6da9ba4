"""The report as one HTML file: inline CSS, PNGs as base64 data URIs, no script, no network."""

from __future__ import annotations

import base64
import html
import time
from collections.abc import Mapping

from chalicelib.engine.states import RUN_STATES, ordered
from chalicelib.report.cost import CostModel
from chalicelib.report.model import RunData
from chalicelib.report.timeline import TypeStats, concurrency, type_stats

CSS = """
body{font:14px/1.45 system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:24px auto;max-width:1400px;
padding:0 16px;color:#222}
h1{font-size:22px;margin:0 0 4px}h2{font-size:17px;margin:28px 0 8px;border-bottom:1px solid #ddd}
.muted{color:#666}.state{display:inline-block;padding:1px 8px;border-radius:10px;color:#fff;font-weight:600}
dl.kv{display:grid;grid-template-columns:max-content auto;gap:2px 16px;margin:12px 0}dl.kv dt{color:#666}
dl.kv dd{margin:0}img{max-width:100%;height:auto;border:1px solid #eee}
table{border-collapse:collapse;font-variant-numeric:tabular-nums}
th,td{padding:3px 9px;border-bottom:1px solid #e5e5e5;text-align:right}th{background:#f6f6f6}
td:first-child,th:first-child{text-align:left}tr.total td{font-weight:600;border-top:2px solid #bbb}
pre{background:#f7f7f7;padding:8px;overflow:auto;max-height:14em;font-size:12px}
""".strip() + "\n" + "".join(f".{s.value}{{background:{i.colour}}}" for s, i in RUN_STATES.items())


def _e(value: object) -> str:
    return html.escape(str(value), quote=True)


def _img(png: bytes, alt: str) -> str:
    data = base64.b64encode(png).decode("ascii")
    return f'<img src="data:image/png;base64,{data}" alt="{_e(alt)}">'


def _bytes(n: int | None) -> str:
    if not n:
        return "0"
    value = float(n)
    for unit in ("B", "KB", "MB", "GB", "TB"):
        if value < 1024 or unit == "TB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return str(n)


def _money(value: float | None) -> str:
    if value is None:
        return "-"
    return f"${value:.6f}" if value < 0.01 else f"${value:.4f}"


def render(run: RunData, pngs: Mapping[str, bytes], costs: CostModel, rows: str = "type") -> str:
    """The whole page. `pngs` maps 'gantt', 'dag' and 'concurrency' to PNG bytes."""
    stats = type_stats(run, costs)
    counts = run.counts()
    parts = [
        "<!doctype html><html lang=en><head><meta charset=utf-8>",
        f"<title>updraft report {_e(run.run_id)}</title><style>{CSS}</style></head><body>",
        f"<h1>{_e(run.name or 'run')} <span class='state {_e(run.state)}'>{_e(run.state)}</span></h1>",
        f"<div class=muted>run {_e(run.run_id)}</div>",
        _summary(run, stats, counts, costs),
        f"<h2>Gantt chart (rows by {_e('task type' if rows == 'type' else 'worker')})</h2>",
        _img(pngs["gantt"], "Gantt chart of every task attempt"),
        "<h2>DAG</h2>", _img(pngs["dag"], "the workflow's DAG coloured by task state"),
        "<h2>Concurrency</h2>", _img(pngs["concurrency"], "tasks running over time"),
        "<h2>Time and cost per task type</h2>", _table(stats, costs),
        f"<p class=muted>{_e(costs.note())}</p>",
        _failures(run),
        f"<p class=muted>Made by <code>updraft report</code> on {time.strftime('%Y-%m-%d %H:%M:%S %Z')}.</p>",
        "</body></html>",
    ]
    return "\n".join(parts)


def _summary(run: RunData, stats: list[TypeStats], counts: dict[str, int], costs: CostModel) -> str:
    by_state = ", ".join(f"{n} {s.lower()}" for s, n in ordered(counts))
    task_s = sum(s.seconds for s in stats)
    cost = None if any(s.cost is None for s in stats) else sum(s.cost or 0.0 for s in stats)
    created = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(run.created_at)) if run.created_at else "-"
    rows = [
        ("submitted", created),
        ("wall time", f"{run.wall_s:.2f} s"),
        ("tasks", f"{len(run.tasks)}: {by_state}"),
        ("task time", f"{task_s:.2f} task-seconds ({task_s / run.wall_s:.1f}x parallel)" if run.wall_s else "-"),
        ("peak concurrency", str(concurrency(run).peak())),
        ("GB-seconds", f"{sum(s.gb_s for s in stats):.2f}"),
        ("estimated cost", _money(cost) if costs.priced else "not priced (no price table)"),
    ]
    items = "".join(f"<dt>{_e(k)}</dt><dd>{_e(v)}</dd>" for k, v in rows)
    return f"<dl class=kv>{items}</dl>"


def _table(stats: list[TypeStats], costs: CostModel) -> str:
    head = ("task type", "tasks", "ok", "failed", "cached", "retried", "task-s", "mean s", "max s", "GB-s",
            "est. cost", "in", "out", "peak RSS", "placement")
    out = ["<table><thead><tr>" + "".join(f"<th>{h}</th>" for h in head) + "</tr></thead><tbody>"]
    for s in stats:
        placement = ", ".join(f"{k} {v}" for k, v in sorted(s.placements.items()))
        rss = f"{s.peak_rss_mb:.0f} MB" if s.peak_rss_mb is not None else "-"
        cells = (s.type, s.tasks, s.ok, s.failed, s.cached, s.retried, f"{s.seconds:.2f}", f"{s.mean_s:.2f}",
                 f"{s.max_s:.2f}", f"{s.gb_s:.2f}", _money(s.cost) if costs.priced else "-", _bytes(s.bytes_in),
                 _bytes(s.bytes_out), rss, placement)
        out.append("<tr>" + "".join(f"<td>{_e(c)}</td>" for c in cells) + "</tr>")
    total_cost = None if any(s.cost is None for s in stats) else sum(s.cost or 0.0 for s in stats)
    totals = ("total", sum(s.tasks for s in stats), sum(s.ok for s in stats), sum(s.failed for s in stats),
              sum(s.cached for s in stats), sum(s.retried for s in stats), f"{sum(s.seconds for s in stats):.2f}",
              "", "", f"{sum(s.gb_s for s in stats):.2f}", _money(total_cost) if costs.priced else "-",
              _bytes(sum(s.bytes_in for s in stats)), _bytes(sum(s.bytes_out for s in stats)), "", "")
    out.append("<tr class=total>" + "".join(f"<td>{_e(c)}</td>" for c in totals) + "</tr>")
    out.append("</tbody></table>")
    return "".join(out)


def _failures(run: RunData, limit: int = 20) -> str:
    failed = [t for t in run.tasks if t.failed]
    if not failed:
        return ""
    out = [f"<h2>Failed tasks ({len(failed)})</h2>"]
    for t in failed[:limit]:
        out.append(f"<h3>{_e(t.id)} <span class=muted>{_e(t.type)}, attempt {t.attempts}, "
                   f"{_e(t.reason or 'failed')}</span></h3>")
        if t.detail:
            out.append(f"<p>{_e(t.detail)}</p>")
        if t.log_tail:
            out.append(f"<pre>{_e(t.log_tail[-4000:])}</pre>")
    if len(failed) > limit:
        out.append(f"<p class=muted>... and {len(failed) - limit} more.</p>")
    return "".join(out)
