"""The report's pictures and page: real PNGs from matplotlib, one self-contained HTML file."""

from __future__ import annotations

import base64
import re
import struct
from pathlib import Path

import pytest

from chalicelib.report import charts
from chalicelib.report.build import draw, write_report
from chalicelib.report.cost import CostModel
from chalicelib.report.model import from_parts
from chalicelib.report.page import render

T0 = 1_700_000_000.0


def png_size(data: bytes) -> tuple[int, int]:
    assert data[:8] == b"\x89PNG\r\n\x1a\n", "not a PNG"
    width, height = struct.unpack(">II", data[16:24])
    return width, height


def demo(n_work: int = 6) -> object:
    tasks = [{"id": "split", "state": "SUCCEEDED", "placement": "function", "attempts": 1,
              "started_at": T0, "finished_at": T0 + 1, "duration_s": 1.0}]
    nodes = [{"id": "split", "type": "split", "parents": [], "level": 0}]
    for i in range(n_work):
        state = "FAILED" if i == 0 else "CACHED" if i == 1 else "SUCCEEDED"
        tasks.append({"id": f"w{i}", "state": state, "placement": "container" if i % 2 else "function",
                      "attempts": 2 if i == 2 else 1, "started_at": T0 + 1 + i * 0.1,
                      "finished_at": T0 + 3 + i * 0.2, "reason": "NONZERO_EXIT" if i == 0 else None,
                      "log_tail": "<b>boom</b>" if i == 0 else None,
                      "detail": "the command exited with code 3" if i == 0 else None})
        nodes.append({"id": f"w{i}", "type": "work", "parents": ["split"], "level": 1})
    tasks.append({"id": "<merge>", "state": "UPSTREAM_FAILED", "placement": "function", "attempts": 1,
                  "started_at": None, "finished_at": T0 + 3})
    nodes.append({"id": "<merge>", "type": "merge", "parents": [f"w{i}" for i in range(n_work)], "level": 2})
    run = {"run_id": "20260101-000000-abcd", "name": "demo <run>", "state": "FAILED", "created_at": T0,
           "finished_at": T0 + 5}
    return from_parts(run, tasks, {"tasks": nodes})


def test_charts_are_real_pngs_sized_to_their_content() -> None:
    small, big = demo(3), demo(60)
    g_small, g_big = png_size(charts.gantt(small)), png_size(charts.gantt(big))  # type: ignore[arg-type]
    assert g_small[0] > 1000 and g_big[1] > g_small[1]  # more lanes, a taller chart
    w, h = png_size(charts.dag(big))  # type: ignore[arg-type]
    assert w > 500 and h > 300
    assert png_size(charts.concurrency_chart(small))[0] > 1000  # type: ignore[arg-type]
    assert png_size(charts.gantt(small, rows="worker"))[1] > 200  # type: ignore[arg-type]


def test_page_is_self_contained_and_escapes_what_tasks_print(tmp_path: Path) -> None:
    files = write_report(demo(), str(tmp_path / "out"))  # type: ignore[arg-type]
    html = Path(files.html).read_text()
    images = re.findall(r'<img src="data:image/png;base64,([A-Za-z0-9+/=]+)"', html)
    assert len(images) == 3
    for data in images:
        png_size(base64.b64decode(data))
    # nothing to fetch: no external URL, script, stylesheet link or font
    assert not re.search(r"(src|href)=\"(https?:)?//", html)
    assert "<script" not in html and "<link" not in html
    # a task's output and names are text, never markup
    assert "<b>boom</b>" not in html and "&lt;b&gt;boom&lt;/b&gt;" in html
    assert "demo &lt;run&gt;" in html and "<merge>" not in html
    assert "the command exited with code 3" in html
    for path in (files.gantt, files.dag, files.concurrency):
        assert Path(path).read_bytes()[:4] == b"\x89PNG"


def test_table_has_a_row_per_type_with_counts_and_a_priced_total() -> None:
    data = demo(4)
    html = render(data, draw(data), CostModel())  # type: ignore[arg-type]
    rows = {m.group(1): m.group(0) for m in re.finditer(r"<tr><td>([^<]+)</td>.*?</tr>", html)}
    cells = re.findall(r"<td>([^<]*)</td>", rows["work"])
    assert cells[:6] == ["work", "4", "3", "1", "1", "1"]  # tasks, ok, failed, cached, retried
    assert "$" in cells[10]
    assert "us-east-1" in html and "read on" in html  # the prices' region and date are stated
    assert "Failed tasks (1)" in html and "NONZERO_EXIT" in html


def test_missing_matplotlib_names_the_pip_command(monkeypatch: pytest.MonkeyPatch) -> None:
    import sys

    for name in [m for m in sys.modules if m == "matplotlib" or m.startswith("matplotlib.")]:
        monkeypatch.delitem(sys.modules, name)
    monkeypatch.setitem(sys.modules, "matplotlib", None)  # `import matplotlib` now fails
    with pytest.raises(charts.ChartsUnavailableError) as err:
        charts.gantt(demo(2))  # type: ignore[arg-type]
    assert f"{sys.executable} -m pip install 'matplotlib>=3.7'" in str(err.value)
    assert err.value.exit_code == 2


def test_a_large_run_keeps_its_gantt_within_bounds() -> None:
    tasks, nodes = [], []
    for i in range(800):
        start = (i % 40) * 1.5
        tasks.append({"id": f"t{i}", "state": "FAILED" if i % 97 == 0 else "SUCCEEDED", "placement": "function",
                      "attempts": 2 if i % 13 == 0 else 1, "started_at": T0 + start, "finished_at": T0 + start + 1})
        nodes.append({"id": f"t{i}", "type": f"type{i % 4}", "parents": [], "level": 0})
    run = from_parts({"run_id": "big", "name": "big", "state": "FAILED", "created_at": T0, "finished_at": T0 + 62},
                     tasks, {"tasks": nodes})
    width, height = png_size(charts.gantt(run))
    assert width == 1320 and 1000 < height <= 24 * charts.DPI  # 80 lanes, capped at 24 inches
