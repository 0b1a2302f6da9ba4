"""POST /runs with hostile bodies, through chalice.test.Client on moto: every body gets a 202
or a 400 that lists what is wrong - never a 500 - and a 400 leaves nothing behind: no item in
DynamoDB, no object in S3, no event on the queue. (The one 404: a body {"s3": ...} naming an
object that does not exist, as tests/unit/test_app.py specifies.)

Bodies: hypothesis-generated JSON, task-shaped garbage, raw bytes and mutated valid
workflows, plus the named cases of issue 10 (invalid JSON, wrong types, 1 MB task ids,
100,000 tasks over the configured limit, deep chains, cycles, absolute and `..` paths,
colliding outputs, unicode and shell metacharacters, sources inside other runs' data).
"""

from __future__ import annotations

import gzip
import json
import random
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from chalicelib.backends.aws.components import Cloud, install
from tests.contract.awskit import make_cloud, mocked_aws
from tests.faults.test_fuzz_inputs import _mutate, task_like

MAX_TASKS = 1000
FUZZ = settings(max_examples=50, deadline=None,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])


@dataclass
class Api:
    client: Any
    cloud: Cloud

    def post(self, body: str | bytes, ctype: str = "application/json") -> Any:
        return self.client.http.post("/runs", body=body, headers={"content-type": ctype})

    def footprint(self) -> tuple[int, int, int]:
        """(DynamoDB items, S3 objects, queued events): what a submission leaves behind."""
        clients, config = self.cloud.clients, self.cloud.config
        items = clients.dynamodb.scan(TableName=config.table, Select="COUNT")["Count"]
        objects = sum(1 for _ in self.cloud.blobs.list(""))
        attrs = clients.sqs.get_queue_attributes(QueueUrl=self.cloud.events_queue.url,
                                                 AttributeNames=["ApproximateNumberOfMessages"])["Attributes"]
        return items, objects, int(attrs["ApproximateNumberOfMessages"])

    def submit(self, body: str | bytes, ctype: str = "application/json") -> Any:
        """POST, then check the contract: 202 with a stored run, or 400 listing the problems
        and leaving nothing."""
        before = self.footprint()
        resp = self.post(body, ctype)
        if resp.status_code == 404:  # {"s3": <an object that does not exist>} names it: a 404
            assert "no object s3://" in resp.json_body["message"] and self.footprint() == before
            return resp
        assert resp.status_code in (202, 400, 413), (resp.status_code, resp.body[:500])
        if resp.status_code == 413:  # past the API's cap: named, with the upload route, nothing written
            reply = resp.json_body
            assert reply["error"] == "too large" and reply["limit"] and reply["message"].strip(), reply
            assert self.footprint() == before, "a refused submission left something behind"
            return resp
        if resp.status_code == 400:
            reply = resp.json_body
            assert reply["error"] and reply["message"].strip()
            listed = reply.get("problems") or reply.get("missing")
            assert listed, reply
            assert all((p["message"] if isinstance(p, dict) else p).strip() for p in listed), reply
            assert self.footprint() == before, "a rejected submission left something behind"
        else:
            run_id = resp.json_body["run_id"]
            assert self.cloud.store.get_run(run_id).task_count == resp.json_body["task_count"]
            assert self.cloud.blobs.exists(f"runs/{run_id}/workflow.json")
        return resp


@pytest.fixture(scope="module")
def api() -> Iterator[Api]:
    with mocked_aws():
        cloud, _ = make_cloud(task_shards=4, max_tasks=MAX_TASKS)
        cloud.blobs.put_bytes("inputs/in.txt", b"x")
        install(cloud)
        from chalice.test import Client

        import app as app_module

        with Client(app_module.app) as client:
            yield Api(client, cloud)
        install(None)


def body(value: Any) -> str:
    return json.dumps(value, allow_nan=True)


# ---- generated ----------------------------------------------------------------------------------

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20),
    lambda children: st.lists(children, max_size=5) | st.dictionaries(st.text(max_size=10), children, max_size=5),
    max_leaves=30,
)
envelopes = st.fixed_dictionaries({}, optional={
    "workflow": json_values, "data": st.sampled_from(["s3://updraft-data/inputs/", "s3://updraft-data/runs/x/",
                                                      "s3:///", "nope", "", 3]),
    "format": st.sampled_from(["native", "makeflow", "martian", None, 7]),
    "s3": st.sampled_from(["s3://updraft-data/nothing.json", "s3://updraft-data/runs/r/workflow.json", "x",
                         "s3://no-such-bucket/wf.json", "s3://updraft-data/inputs/in.txt"]),
    "extra": st.integers(),
})


@FUZZ
@given(json_values)
def test_any_json_body_gets_202_or_400(api: Api, value: Any) -> None:
    api.submit(body(value))


@FUZZ
@given(st.lists(task_like, min_size=1, max_size=6), st.booleans())
def test_task_shaped_bodies_get_202_or_400(api: Api, tasks: list[dict[str, Any]], wrapped: bool) -> None:
    wf = {"name": "fuzz", "tasks": tasks}
    api.submit(body({"workflow": wf, "data": "s3://updraft-data/inputs/"} if wrapped else wf))


@FUZZ
@given(envelopes)
def test_request_envelopes_get_202_or_400(api: Api, envelope: dict[str, Any]) -> None:
    api.submit(body(envelope))


@FUZZ
@given(st.binary(max_size=300), st.sampled_from(["application/json", "text/plain", "application/octet-stream"]))
def test_raw_bytes_get_202_or_400(api: Api, raw: bytes, ctype: str) -> None:
    api.submit(raw, ctype)


VALID = {"name": "ok", "inputs": [{"path": "in.txt", "source": "s3://updraft-data/inputs/in.txt"}], "tasks": [
    {"id": "a", "command": ["cp", "in.txt", "a.txt"], "inputs": ["in.txt"], "outputs": ["a.txt"]},
    {"id": "b", "shell": "wc -c a.txt > b.txt", "inputs": ["a.txt"], "outputs": ["b.txt"], "placement": "container",
     "resources": {"memory_mb": 2048, "timeout_s": 600}, "retries": 2},
]}


def test_mutated_valid_bodies_get_202_or_400(api: Api) -> None:
    text = json.dumps({"workflow": VALID})
    assert api.submit(text).status_code == 202
    rng = random.Random(10)
    statuses = {api.submit(_mutate(text, rng)).status_code for _ in range(80)}
    assert statuses == {202, 400}


# ---- named cases ---------------------------------------------------------------------------------

def chain(n: int) -> dict[str, Any]:
    return {"name": "chain", "tasks": [{"id": f"t{i}", "command": ["true"], **({"after": [f"t{i - 1}"]} if i else {})}
                                       for i in range(n)]}


REJECTED: dict[str, tuple[str | bytes, str]] = {
    "invalid JSON": ('{"tasks": [', "application/json"),
    "empty body": ("", "application/json"),
    "not UTF-8": (b"\xff\xfe\x00{", "text/plain"),
    "broken gzip": (b"\x1f\x8b\x08\x00garbage", "application/octet-stream"),
    "tasks is a string": (body({"tasks": "abc"}), "application/json"),
    "wrong types": (body({"tasks": [{"id": 3, "command": 4, "resources": {"memory_mb": "lots"}, "retries": "x"}]}),
                    "application/json"),
    "NaN memory": ('{"tasks": [{"id": "a", "command": ["x"], "resources": {"memory_mb": NaN}}]}', "application/json"),
    "infinite memory": ('{"tasks": [{"id": "a", "command": ["x"], "resources": {"memory_mb": 1e999}}]}',
                        "application/json"),
    "1 MB task id": (body({"tasks": [{"id": "x" * 1_000_000, "command": ["true"]}]}), "application/json"),
    "100,000 tasks past the API's cap": (body(chain(100_000)), "application/json"),
    "5,000 tasks over the limit": (body(chain(5_000)), "application/json"),
    "cycle": (body({"tasks": [{"id": "a", "command": ["x"], "inputs": ["b.out"], "outputs": ["a.out"]},
                              {"id": "b", "command": ["x"], "inputs": ["a.out"], "outputs": ["b.out"]}]}),
              "application/json"),
    "absolute and .. paths": (body({"tasks": [{"id": "a", "command": ["x"], "outputs": ["/etc/passwd"]},
                                              {"id": "b", "command": ["x"], "outputs": ["../../other/x"]},
                                              {"id": "c", "command": ["x"], "inputs": ["a/../../y"]}]}),
                              "application/json"),
    "colliding outputs": (body({"tasks": [{"id": "a", "command": ["x"], "outputs": ["o"]},
                                          {"id": "b", "command": ["x"], "outputs": ["o"]}]}), "application/json"),
    "input from another run": (body({"inputs": [{"path": "i", "source": "s3://updraft-data/runs/OTHER/data/i"}],
                                     "tasks": [{"id": "a", "command": ["cat", "i"], "inputs": ["i"]}]}),
                               "application/json"),
    "data prefix of another run": (body({"workflow": {"tasks": [{"id": "a", "command": ["cat", "i"],
                                                                 "inputs": ["i"]}]},
                                         "data": "s3://updraft-data/runs/OTHER/data/"}), "application/json"),
    "spec of another run": (body({"s3": "s3://updraft-data/runs/OTHER/workflow.json"}), "application/json"),
    "dot-dot key into the runs": (body({"inputs": [{"path": "i", "source": "s3://updraft-data/inputs/../runs/O/i"}],
                                        "tasks": [{"id": "a", "command": ["cat", "i"], "inputs": ["i"]}]}),
                                  "application/json"),
    "missing input": (body({"inputs": [{"path": "i", "source": "s3://updraft-data/inputs/absent"}],
                            "tasks": [{"id": "a", "command": ["cat", "i"], "inputs": ["i"]}]}), "application/json"),
}


@pytest.mark.parametrize("case", list(REJECTED))
def test_named_bad_bodies_are_rejected_with_nothing_written(api: Api, case: str) -> None:
    raw, ctype = REJECTED[case]
    resp = api.submit(raw, ctype)
    assert resp.status_code == (413 if case == "100,000 tasks past the API's cap" else 400), (case, resp.json_body)
    text = json.dumps(resp.json_body)
    expected = {"100,000 tasks past the API's cap": "at most 20,000",
                "5,000 tasks over the limit": f"limit is {MAX_TASKS}", "cycle": "a -> b",
                "1 MB task id": "at most 200", "input from another run": "another run",
                "data prefix of another run": "another run", "spec of another run": "another run",
                "dot-dot key into the runs": "'..'", "missing input": "absent"}.get(case)
    assert expected is None or expected in text, text[:1000]


def test_every_problem_is_listed_not_just_the_first(api: Api) -> None:
    bad = [{"id": f"t{i}", "command": ["x"], "outputs": [f"/abs{i}"]} for i in range(7)]
    resp = api.submit(body({"tasks": bad}))
    assert resp.status_code == 400
    assert sorted(p["task_id"] for p in resp.json_body["problems"]) == sorted(f"t{i}" for i in range(7))


@pytest.mark.parametrize("raw", ["[" * 100_000, '{"workflow": ' * 50_000])
def test_json_nested_past_the_recursion_limit_is_a_400(api: Api, raw: str) -> None:
    assert api.post(raw).status_code == 400


NON_FINITE_AND_NUL = {
    "NaN timeout": '{"tasks": [{"id": "a", "command": ["x"], "resources": {"timeout_s": NaN}}]}',
    "infinite container timeout": '{"tasks": [{"id": "a", "command": ["x"], "placement": "container", '
                                  '"resources": {"timeout_s": 1e999}}]}',
    "NaN cpus": '{"tasks": [{"id": "a", "command": ["x"], "resources": {"cpus": NaN}}]}',
    "NUL byte in argv": '{"tasks": [{"id": "a", "command": ["x\\u0000y"]}]}',
}


@pytest.mark.parametrize("case", list(NON_FINITE_AND_NUL))
def test_non_finite_resources_and_nul_bytes_are_rejected(api: Api, case: str) -> None:
    assert api.submit(NON_FINITE_AND_NUL[case]).status_code == 400


def test_deeply_nested_text_bodies_are_a_400(api: Api) -> None:
    api.submit("[" * 100_000, "text/plain")


ACCEPTED: dict[str, Any] = {
    "deep chain (no recursion limit)": chain(MAX_TASKS),
    "unicode and metacharacters": {"tasks": [{"id": "ünï-$(rm)`x`;|&~", "command": ["echo", "$(rm -rf /)", "`id`"],
                                              "outputs": ["ö/ä $(x).txt"]}]},
    "input from the app's inputs prefix": {"workflow": VALID},
    "gzip": None,
}


@pytest.mark.parametrize("case", list(ACCEPTED))
def test_named_good_bodies_are_accepted(api: Api, case: str) -> None:
    if case == "gzip":
        resp = api.submit(gzip.compress(json.dumps(VALID).encode()), "application/octet-stream")
    else:
        resp = api.submit(body(ACCEPTED[case]))
    assert resp.status_code == 202, resp.json_body
    if case.startswith("deep chain"):
        assert resp.json_body["task_count"] == MAX_TASKS


NAMED_NUMBERS = {
    "NaN memory": ('{"tasks": [{"id": "a", "command": ["x"], "resources": {"memory_mb": NaN}}]}',
                   ("a", "resources.memory_mb")),
    "1e400 disk via defaults": ('{"defaults": {"resources": {"disk_mb": 1e400}}, '
                                '"tasks": [{"id": "a", "command": ["x"]}]}', (None, "defaults.resources.disk_mb")),
    "10**400 cpus": ('{"tasks": [{"id": "a", "command": ["x"], "resources": {"cpus": 1' + "0" * 400 + '}}]}',
                     ("a", "resources.cpus")),
    "infinite runtime hint": ('{"tasks": [{"id": "a", "command": ["x"], "hints": {"runtime_s": Infinity}}]}',
                              ("a", "hints.runtime_s")),
    "1e308 runtime hint": ('{"tasks": [{"id": "a", "command": ["x"], "hints": {"runtime_s": 1e308}}]}',
                           ("a", "hints.runtime_s")),
    "WfCommons NaN size": ('{"workflow": {"name": "x", "schemaVersion": "1.4", "workflow": {"tasks": [{"name": "a", '
                           '"runtime": 1, "files": [{"name": "f.txt", "link": "output", "size": NaN}]}]}}}',
                           ("a", "files[0].sizeInBytes")),
}


@pytest.mark.parametrize("case", list(NAMED_NUMBERS))
def test_non_finite_numbers_are_problems_naming_task_and_field(api: Api, case: str) -> None:
    raw, where = NAMED_NUMBERS[case]
    resp = api.submit(raw)
    assert resp.status_code == 400, resp.json_body
    assert [(p["task_id"], p["field"]) for p in resp.json_body["problems"]] == [where], resp.json_body


def test_inputs_under_another_runs_prefix_are_refused_when_built_from_the_data_prefix(api: Api) -> None:
    resp = api.submit(body({"workflow": {"tasks": [{"id": "a", "command": ["cat", "runs/OTHER/workflow.json"],
                                                    "inputs": ["runs/OTHER/workflow.json"]}]},
                            "data": "s3://updraft-data/"}))
    assert resp.status_code == 400 and "another run" in json.dumps(resp.json_body), resp.json_body
