"""The CWL conformance suite's required Workflow tests on the emulated cloud (the real app
handlers, task function and worker over moto): the same plan and task-side launcher as on
the local runtime, checked with cwltest's own comparison."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from tests.e2e.test_cloud_harness import emulated_cloud
from tests.e2e.test_cwl_conformance import SUITE

yaml = pytest.importorskip("yaml")
pytest.importorskip("cwl_utils", reason="the cwl extra is not installed")
compare = pytest.importorskip("cwltest.compare", reason="cwltest is not installed").compare
pytestmark = [pytest.mark.slow, pytest.mark.skipif(SUITE is None, reason="the CWL v1.2 suite is not here")]


def required_workflow_tests() -> list[dict[str, Any]]:
    if SUITE is None:
        return []
    tests = yaml.safe_load((SUITE / "conformance_tests.yaml").read_text())
    return [t for t in tests if "required" in t.get("tags", []) and "workflow" in t.get("tags", [])]


class _Blobs:
    def __init__(self, blobs: Any) -> None:
        self.blobs = blobs


@pytest.mark.timeout(900)
def test_required_workflow_tests_pass_on_the_emulated_cloud(tmp_path: Path) -> None:
    from chalicelib.cwl.errors import CwlError
    from chalicelib.cwl.job import load_and_plan, output_object
    from chalicelib.errors import UpdraftError
    from chalicelib.workflow.formats import native

    cases = required_workflow_tests()
    assert len(cases) >= 15
    failed: list[str] = []
    ran = 0
    with emulated_cloud(tmp_path) as ec:
        for n, case in enumerate(cases):
            assert SUITE is not None
            tool = str(SUITE / case["tool"])
            job = str(SUITE / case["job"]) if case.get("job") else None
            try:
                wf, final = load_and_plan(tool, job)
            except (CwlError, UpdraftError) as exc:
                if not case.get("should_fail"):
                    failed.append(f"{case['id']}: {exc}")
                continue
            prefix = f"inputs/{n}/"
            for f in wf.inputs:
                ec.cloud.blobs.put_file(prefix + f.path, str(f.source))
            outdir = tmp_path / "out" / case["id"]
            outdir.mkdir(parents=True)
            if not wf.tasks:  # no steps: the outputs come from the inputs, nothing runs
                _check(case, output_object(None, "", final, str(outdir)), failed)
                continue
            data = f"s3://{ec.cloud.config.bucket}/{ec.cloud.config.blob_prefix}{prefix}"
            resp = ec.post("/runs", {"workflow": json.loads(native.dump(_no_sources(wf))), "data": data})
            assert resp.status_code == 202, resp.json_body
            run_id = resp.json_body["run_id"]
            state = ec.run_until_done(run_id, timeout_s=240)["state"]
            ran += 1
            if case.get("should_fail"):
                if state == "SUCCEEDED":
                    failed.append(f"{case['id']}: succeeded but should fail")
                continue
            if state != "SUCCEEDED":
                failed.append(f"{case['id']}: run {state}")
                continue
            _check(case, output_object(_Blobs(ec.cloud.blobs), run_id, final, str(outdir)), failed)
    assert not failed, "\n".join(failed)
    assert ran >= 14  # 14 really run in the cloud (the others have no steps or must fail to plan)


def _check(case: dict[str, Any], got: dict[str, Any], failed: list[str]) -> None:
    if case.get("should_fail"):
        failed.append(f"{case['id']}: succeeded but should fail")
        return
    try:
        compare(case.get("output", {}), got)
    except Exception as exc:
        failed.append(f"{case['id']}: {str(exc)[:300]}")


def _no_sources(wf: Any) -> Any:
    """The workflow with its inputs found in the run's data prefix (uploaded there)."""
    import msgspec

    return msgspec.structs.replace(wf, inputs=tuple(msgspec.structs.replace(f, source=None) for f in wf.inputs))
