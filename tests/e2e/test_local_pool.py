"""The local function pool: slot threads, prepared attempts waiting for a slot, reused sandboxes."""

from __future__ import annotations

from pathlib import Path

from tests.e2e.cli import run_json, write_workflow


def test_no_more_tasks_run_at_once_than_the_concurrency(tmp_path: Path) -> None:
    log = tmp_path / "spans.log"
    # each task appends its start and end (ns) to a shared log outside the sandboxes
    shell = f'echo "s $(date +%s%N)" >> {log}; sleep 0.15; echo "e $(date +%s%N)" >> {log}'
    wf = write_workflow(tmp_path / "wf.json", [{"id": f"t{i}", "shell": shell} for i in range(12)])
    code, result = run_json(wf, tmp_path / "wd", "--concurrency", "3")
    assert code == 0, result
    events = sorted((int(t), kind) for kind, t in (line.split() for line in log.read_text().splitlines()))
    running = peak = 0
    for _, kind in events:  # at a tie an end sorts before a start ("e" < "s")
        running += 1 if kind == "s" else -1
        peak = max(peak, running)
    assert len(events) == 24
    assert peak == 3  # all slots used, never more


def test_a_task_that_removes_or_fills_its_sandbox_does_not_affect_the_next(tmp_path: Path) -> None:
    tasks = [
        {"id": "wreck", "shell": 'rm -rf "$TMPDIR"; echo junk > left-behind'},
        *({"id": f"use{i}", "after": ["wreck"], "outputs": [f"o{i}"],
           "shell": f'test -d "$TMPDIR" && test ! -e left-behind && echo ok > "$TMPDIR/x" && mv "$TMPDIR/x" o{i}'}
          for i in range(4)),
    ]
    wf = write_workflow(tmp_path / "wf.json", tasks)
    code, result = run_json(wf, tmp_path / "wd", "--concurrency", "1")
    assert code == 0, result
    assert result["counts"] == {"SUCCEEDED": 5}
