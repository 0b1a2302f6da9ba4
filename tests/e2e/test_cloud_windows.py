"""Bounded work per event on the emulated cloud (issue 23 item 6): with a window of 4 tasks per
coordinator event, a task's 20 children, a Start of 30 READY tasks and a cancel all go through
continuation events on the real events queue, with duplicated and shuffled delivery, and every
task runs once; GET /runs/{id}/tasks pages through the run with its next tokens."""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from chalicelib.engine.coordinator import CoordinatorConfig
from chalicelib.engine.states import TaskState
from tests.e2e.test_cloud_harness import Delivery, EmulatedCloud, emulated_cloud

pytestmark = pytest.mark.slow

WINDOW = 4
MARK = 'echo "$UPDRAFT_TASK_ID" >> "$EFFECTS"'


@pytest.fixture
def ec(tmp_path: Path) -> Iterator[EmulatedCloud]:
    delivery = Delivery(duplicate_rate=0.2, shuffle=True, seed=7)
    with emulated_cloud(tmp_path, delivery, workers=0) as cloud:
        cloud.cloud.coordinator_config = CoordinatorConfig(start_batch=WINDOW)
        yield cloud


def fan_out(effects: Path, children: int) -> dict[str, Any]:
    tasks = [{"id": "root", "shell": MARK}]
    tasks += [{"id": f"c{i:02d}", "shell": MARK, "after": ["root"]} for i in range(children)]
    return {"name": "fan-out", "defaults": {"env": {"EFFECTS": str(effects)}}, "tasks": tasks}


def submit(ec: EmulatedCloud, workflow: dict[str, Any]) -> str:
    resp = ec.post("/runs", workflow)
    assert resp.status_code == 202, resp.json_body
    return str(resp.json_body["run_id"])


def test_a_wide_fan_out_runs_every_child_once_through_continuations(ec: EmulatedCloud, tmp_path: Path) -> None:
    effects = tmp_path / "effects.txt"
    run_id = submit(ec, fan_out(effects, 20))
    body = ec.run_until_done(run_id)
    assert body["state"] == "SUCCEEDED", body
    assert Counter(effects.read_text().split()) == Counter(["root", *(f"c{i:02d}" for i in range(20))])
    seen: list[str] = []
    token = None
    while True:
        query = f"?limit=6{'&next=' + token if token else ''}"
        page = ec.get(f"/runs/{run_id}/tasks{query}").json_body
        assert len(page["tasks"]) <= 6 and page["count"] == 21
        seen += [t["id"] for t in page["tasks"]]
        token = page["next"]
        if token is None:
            break
    assert sorted(seen) == sorted(["root", *(f"c{i:02d}" for i in range(20))])


def test_a_cancel_of_a_wide_run_goes_through_its_windows(ec: EmulatedCloud, tmp_path: Path) -> None:
    effects = tmp_path / "effects.txt"
    tasks = [{"id": f"t{i:02d}", "shell": MARK + "; sleep 30"} for i in range(30)]
    run_id = submit(ec, {"name": "wide", "defaults": {"env": {"EFFECTS": str(effects)}}, "tasks": tasks})
    ec.deliver_batch()  # the Start: one window dispatched, the next Start queued
    resp = ec.post(f"/runs/{run_id}/cancel", None)
    assert resp.status_code == 202, resp.json_body
    for _ in range(60):  # the coordinator's events only (Cancel and its continuations): nothing runs
        if not ec.deliver_batch():
            break
    counts = ec.cloud.store.counts(run_id)
    assert ec.cloud.store.get_run(run_id).state.value == "CANCELLED"
    assert counts == {TaskState.CANCELLED.value: 30}, counts
    manifest = json.loads(ec.cloud.blobs.get_bytes(f"runs/{run_id}/manifest.json"))
    assert manifest["state"] == "CANCELLED"
