"""A workflow too big for the API's 29 s is refused with a 413 that names the limit and the
upload route, and the same workflow uploaded under submit/ starts its run (issue 23 item 7)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest

from chalicelib.backends.aws import api
from chalicelib.backends.aws.components import Cloud, install
from chalicelib.service.errors import error_body
from tests.contract.awskit import make_cloud, mocked_aws

LIMIT = 10
BIG = {"name": "big", "tasks": [{"id": f"t{i:02d}", "command": ["true"]} for i in range(LIMIT + 1)]}


@pytest.fixture
def cloud_client() -> Iterator[tuple[Cloud, Any]]:
    from chalice.test import Client

    with mocked_aws():
        cloud, _ = make_cloud(api_max_tasks=LIMIT)
        install(cloud)
        import app as app_module

        try:
            with Client(app_module.app) as client:
                yield cloud, client
        finally:
            install(None)


def post(client: Any, body: Any) -> Any:
    return client.http.post("/runs", body=json.dumps(body), headers={"content-type": "application/json"})


def test_a_workflow_over_the_api_limit_is_a_413_naming_the_limit_and_the_upload(
        cloud_client: tuple[Cloud, Any]) -> None:
    cloud, client = cloud_client
    for body in (BIG, {"workflow": BIG}):
        resp = post(client, body)
        assert resp.status_code == 413, resp.json_body
        reply = resp.json_body
        assert reply["error"] == "too large" and reply["limit"] == LIMIT
        assert "11 tasks" in reply["message"] and "at most 10" in reply["message"]
        assert f"s3://{cloud.config.bucket}/submit/" in reply["message"]  # the way that takes it
    assert cloud.store.list_runs() == []  # nothing written
    small = {"name": "small", "tasks": BIG["tasks"][:LIMIT]}
    assert post(client, small).status_code == 202


def test_a_stored_workflow_named_through_the_api_is_refused_too(cloud_client: tuple[Cloud, Any]) -> None:
    cloud, client = cloud_client
    cloud.blobs.put_bytes(f"s3://{cloud.config.bucket}/inputs/big.json", json.dumps(BIG).encode())
    resp = post(client, {"s3": f"s3://{cloud.config.bucket}/inputs/big.json"})
    assert resp.status_code == 413 and resp.json_body["limit"] == LIMIT


def test_the_same_workflow_uploaded_under_submit_starts_its_run(cloud_client: tuple[Cloud, Any]) -> None:
    cloud, _ = cloud_client
    key = "submit/big/big.json"
    cloud.blobs.put_bytes(f"s3://{cloud.config.bucket}/{key}", json.dumps(BIG).encode())
    status, body = api.s3_upload(cloud, cloud.config.bucket, key, "v1")
    assert status == 202, body
    assert cloud.store.get_run(body["run_id"]).task_count == LIMIT + 1


def test_a_body_over_what_lambda_takes_is_a_413(cloud_client: tuple[Cloud, Any]) -> None:
    from chalicelib.backends.aws import submit

    cloud, _ = cloud_client
    raw = b"x" * (submit.API_MAX_BODY_BYTES + 1)
    with pytest.raises(Exception) as err:
        cloud.read_request(None, raw)
    status, reply = error_body(err.value)  # type: ignore[arg-type]
    assert status == 413 and reply["limit"] == submit.API_MAX_BODY_BYTES and "submit/" in reply["message"]
