"""Runs are isolated on the emulated cloud (issue 22, D12): a run cannot read another run's
data or stored spec - secrets and env values included - by pointing its data prefix at the
bucket's root and naming runs/<other>/... as inputs. Before, that POST got a 202 and the
task's output held the other run's secret."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.e2e.test_cloud_harness import emulated_cloud
from tests.e2e.test_cloud_runs import upload_inputs

pytestmark = pytest.mark.slow

SECRET = "TOP-SECRET-4f1c"
TOKEN = "env-token-9b2e"


def test_a_run_cannot_read_another_runs_data_or_spec(tmp_path: Path) -> None:
    with emulated_cloud(tmp_path, workers=0) as ec:
        config = ec.cloud.config
        private = upload_inputs(ec, {"s.txt": SECRET.encode() + b"\n"}, prefix="private/")
        victim = {"name": "victim", "tasks": [{
            "id": "keep", "shell": "cat s.txt > kept.txt", "inputs": ["s.txt"], "outputs": ["kept.txt"],
            "placement": "function", "env": {"API_TOKEN": TOKEN}}]}
        resp = ec.post("/runs", {"workflow": victim, "data": private})
        assert resp.status_code == 202, resp.json_body
        run_a = resp.json_body["run_id"]
        assert ec.run_until_done(run_a, timeout_s=120)["state"] == "SUCCEEDED"
        assert SECRET.encode() in ec.cloud.blobs.get_bytes(f"runs/{run_a}/data/kept.txt")
        assert TOKEN.encode() in ec.cloud.blobs.get_bytes(f"runs/{run_a}/workflow.json")

        stolen = [f"runs/{run_a}/data/kept.txt", f"runs/{run_a}/workflow.json"]
        thief = {"name": "thief", "tasks": [{
            "id": "steal", "command": ["sh", "-c", 'cat "$@" > loot.txt', "sh", *stolen],
            "inputs": stolen, "outputs": ["loot.txt"], "placement": "function"}]}
        runs_before = len(ec.cloud.store.list_runs())
        resp = ec.post("/runs", {"workflow": thief, "data": f"s3://{config.bucket}/{config.blob_prefix}"})
        if resp.status_code == 202:  # the leak this test guards against: show what was read
            run_b = resp.json_body["run_id"]
            ec.run_until_done(run_b, timeout_s=120)
            loot = ec.cloud.blobs.get_bytes(f"runs/{run_b}/data/loot.txt") if ec.cloud.blobs.exists(
                f"runs/{run_b}/data/loot.txt") else b""
            pytest.fail(f"run B was accepted and read run A: {loot[:300]!r}")
        assert resp.status_code == 400, resp.json_body
        reply = resp.json_body
        named = {p["message"].split("'")[1] for p in reply["problems"]}
        assert named == set(stolen), reply
        assert all(p["field"] == "inputs" and "another run" in p["message"] for p in reply["problems"]), reply
        assert SECRET not in json.dumps(reply) and TOKEN not in json.dumps(reply)
        assert len(ec.cloud.store.list_runs()) == runs_before  # nothing stored for the refused run

        # the same data prefix is fine for inputs outside the app's own prefixes
        honest = {"name": "honest", "tasks": [{
            "id": "read", "shell": "cat private/s.txt > copy.txt", "inputs": ["private/s.txt"],
            "outputs": ["copy.txt"], "placement": "function"}]}
        resp = ec.post("/runs", {"workflow": honest, "data": f"s3://{config.bucket}/{config.blob_prefix}"})
        assert resp.status_code == 202, resp.json_body
        assert ec.run_until_done(resp.json_body["run_id"], timeout_s=120)["state"] == "SUCCEEDED"
