"""Write a run's report: report.html (self-contained) beside gantt.png, dag.png, concurrency.png."""

from __future__ import annotations

import os

from msgspec import Struct

from chalicelib.report import charts
from chalicelib.report.cost import CostModel
from chalicelib.report.model import RunData
from chalicelib.report.page import render
from chalicelib.report.timeline import ROW_MODES


class ReportFiles(Struct, frozen=True):
    html: str
    gantt: str
    dag: str
    concurrency: str


def draw(run: RunData, rows: str = "type") -> dict[str, bytes]:
    """The three charts as PNG bytes (raises ChartsUnavailableError without matplotlib)."""
    if rows not in ROW_MODES:
        raise ValueError(f"rows must be one of {ROW_MODES}, got {rows!r}")
    return {"gantt": charts.gantt(run, rows), "dag": charts.dag(run), "concurrency": charts.concurrency_chart(run)}


def write_report(run: RunData, out_dir: str, rows: str = "type", costs: CostModel | None = None) -> ReportFiles:
    pngs = draw(run, rows)
    os.makedirs(out_dir, exist_ok=True)
    paths = {name: os.path.join(out_dir, f"{name}.png") for name in pngs}
    for name, data in pngs.items():
        with open(paths[name], "wb") as fh:
            fh.write(data)
    page = os.path.join(out_dir, "report.html")
    with open(page, "w", encoding="utf-8") as fh:
        fh.write(render(run, pngs, costs or CostModel(), rows))
    return ReportFiles(page, paths["gantt"], paths["dag"], paths["concurrency"])
