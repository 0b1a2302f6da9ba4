"""The dependency cache and memoization on the emulated cloud: functions and the worker share
one volume (EFS), so a re-run of an unchanged workflow runs nothing, on either placement."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.e2e.test_cloud_harness import emulated_cloud
from tests.e2e.test_cloud_runs import effects_by_task, folder_workflow, layered_workflow, upload_inputs

pytestmark = pytest.mark.slow


def test_a_rerun_on_the_cloud_reuses_every_result(tmp_path: Path) -> None:
    effects = tmp_path / "effects.log"
    effects.touch()
    with emulated_cloud(tmp_path) as ec:
        data = upload_inputs(ec, {"seed.txt": b"3\n"})
        first = ec.post("/runs", {"workflow": layered_workflow(effects), "data": data}).json_body["run_id"]
        assert ec.run_until_done(first, timeout_s=240)["state"] == "SUCCEEDED"
        ran_once = effects_by_task(effects)
        again = ec.post("/runs", {"workflow": layered_workflow(effects), "data": data}).json_body["run_id"]
        final = ec.run_until_done(again, timeout_s=240)
        assert final["state"] == "SUCCEEDED" and final["counts"] == {"CACHED": 8}, final
        assert effects_by_task(effects) == ran_once  # nothing ran the second time
        assert ec.cloud.blobs.get_bytes(f"runs/{again}/data/report.txt").strip() == b"total=50"
        # inputs that changed content run again, with their downstream only
        data2 = upload_inputs(ec, {"seed.txt": b"4\n"}, prefix="inputs2/")
        third = ec.post("/runs", {"workflow": layered_workflow(effects), "data": data2}).json_body["run_id"]
        final = ec.run_until_done(third, timeout_s=240)
        assert final["state"] == "SUCCEEDED" and final["counts"].get("CACHED", 0) == 0
        assert ec.cloud.blobs.get_bytes(f"runs/{third}/data/report.txt").strip() == b"total=77"


def test_a_rerun_with_folders_on_the_cloud_reuses_every_result(tmp_path: Path) -> None:
    """Folder inputs key the memo by their tree hash; folder outputs are restored file by file."""
    with emulated_cloud(tmp_path) as ec:
        data = upload_inputs(ec, {"refs/x": b"x\n", "refs/deep/y": b"y\n"})
        first = ec.post("/runs", {"workflow": folder_workflow(), "data": data}).json_body["run_id"]
        assert ec.run_until_done(first, timeout_s=240)["state"] == "SUCCEEDED"
        again = ec.post("/runs", {"workflow": folder_workflow(), "data": data}).json_body["run_id"]
        final = ec.run_until_done(again, timeout_s=240)
        assert final["state"] == "SUCCEEDED" and final["counts"] == {"CACHED": 3}, final
        assert ec.cloud.blobs.get_bytes(f"runs/{again}/data/db/sub/b.txt") == b"y\n"
        assert ec.cloud.blobs.get_bytes(f"runs/{again}/data/listing") == b"db/a.txt\ndb/sub/b.txt\nx\ny\n"
        data2 = upload_inputs(ec, {"refs/x": b"x\n", "refs/deep/y": b"changed\n"}, prefix="inputs2/")
        third = ec.post("/runs", {"workflow": folder_workflow(), "data": data2}).json_body["run_id"]
        final = ec.run_until_done(third, timeout_s=240)
        assert final["state"] == "SUCCEEDED" and final["counts"].get("CACHED", 0) == 0, final
        assert ec.cloud.blobs.get_bytes(f"runs/{third}/data/first") == b"changed\n"


def test_cloud_memo_entries_are_signed_with_the_stage_key_object_no_task_can_see(tmp_path: Path) -> None:
    """The stage's memo key is an object only the runners read (memo_secret.py): entries verify
    with it, no key file is made on the shared volume, and no task's environment holds it."""
    import os

    from chalicelib.cache.memo import MemoIndex

    secret = os.urandom(32).hex().encode()
    effects = tmp_path / "effects.log"
    effects.touch()
    with emulated_cloud(tmp_path, memo_key_object="keys/memo-key") as ec:
        ec.cloud.clients.s3.put_object(Bucket=ec.cloud.config.bucket, Key="keys/memo-key", Body=secret)
        data = upload_inputs(ec, {"seed.txt": b"3\n"})
        first = ec.post("/runs", {"workflow": layered_workflow(effects), "data": data}).json_body["run_id"]
        assert ec.run_until_done(first, timeout_s=240)["state"] == "SUCCEEDED"
        again = ec.post("/runs", {"workflow": layered_workflow(effects), "data": data}).json_body["run_id"]
        assert ec.run_until_done(again, timeout_s=240)["counts"] == {"CACHED": 8}
        efs = tmp_path / "efs"
        entries = list((efs / "memo").rglob("*.json"))
        assert len(entries) == 8
        signed = MemoIndex(str(efs / "memo"), secret=secret)
        assert all(signed.get(p.stem) is not None for p in entries)  # signed with the object's key
        assert all(MemoIndex(str(efs / "memo"), secret=b"another").get(p.stem) is None for p in entries)
        assert not (efs / "memo.key").exists()  # no key a task could read on the shared volume
        snoop = {"name": "snoop", "tasks": [
            {"id": f"env-{p}", "placement": p, "outputs": [f"{p}.env"],
             "shell": f"{{ env; cat /proc/$PPID/environ; }} > {p}.env 2>&1 || true"}
            for p in ("function", "container")]}
        run = ec.post("/runs", {"workflow": snoop}).json_body["run_id"]
        assert ec.run_until_done(run, timeout_s=240)["state"] == "SUCCEEDED"
        for p in ("function", "container"):
            seen = ec.cloud.blobs.get_bytes(f"runs/{run}/data/{p}.env")
            assert secret not in seen
