"""`chalice package` of the app, configured by bootstrap, runs; its SAM template merged with
infra/stack.yaml (`--merge-template`) passes cfn-lint; the two agree on queue names and
timeouts and share no logical id; the roles Chalice generates pass the IAM audit.

The project is copied to a temporary folder so that bootstrap's writes never touch the real
.chalice/config.json, with an empty requirements.txt: the template is under test, not the
dependencies (which `chalice package` would otherwise download).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from infra.chalice_cli import LAMBDA_RUNTIME
from infra.names import APP_NAME, REPO, TEMPLATE
from tests.deploy import templates
from tests.deploy.conftest import bootstrapped
from tests.deploy.iam_audit import policy_problems, template_policies

STAGE = "dev"  # a stage of the real .chalice/config.json, with its policy file
Packaged = tuple[dict[str, Any], dict[str, Any], dict[str, str]]
FAKE = {"AWS_DEFAULT_REGION": "us-east-1", "AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing"}


def copy_project(dest: Path) -> None:
    shutil.copy2(REPO / "app.py", dest / "app.py")
    shutil.copytree(REPO / "chalicelib", dest / "chalicelib", ignore=shutil.ignore_patterns("__pycache__"))
    (dest / ".chalice").mkdir()
    for path in (REPO / ".chalice").glob("*.json"):
        shutil.copy2(path, dest / ".chalice" / path.name)
    (dest / "requirements.txt").write_text("")


def chalice_package(project: Path, out: str, *extra: str) -> dict[str, Any]:
    env = {**os.environ, **FAKE, "PYTHONPATH": str(REPO)}
    env.pop("UPDRAFT_LAMBDA_RUNTIME", None)
    proc = subprocess.run([sys.executable, "-m", "infra.chalice_cli", "package", "--stage", STAGE, *extra, out],
                          cwd=project, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    produced = sorted((project / out).glob("sam.*"))
    assert len(produced) == 1, produced
    return templates.load(produced[0])


@pytest.fixture(scope="module")
def packaged(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Packaged]:
    """(Chalice's template, the merged template, the stack outputs bootstrap wrote)."""
    project = tmp_path_factory.mktemp("project")
    copy_project(project)
    with bootstrapped(project / ".chalice" / "config.json", STAGE) as (_, outputs):
        pass  # the stack is only needed for the outputs bootstrap writes into the config
    alone = chalice_package(project, "out")
    merged = chalice_package(project, "merged", "--merge-template", str(TEMPLATE))
    yield alone, merged, outputs


def functions(template: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {k: v["Properties"] for k, v in template["Resources"].items() if v["Type"] == "AWS::Serverless::Function"}


def test_merged_template_passes_cfn_lint(packaged: Packaged) -> None:
    _, merged, _ = packaged
    assert "Bucket" in merged["Resources"] and "Task" in merged["Resources"]
    assert templates.lint(json.dumps(merged)) == []


def test_chalice_and_stack_templates_share_no_logical_id(
        packaged: Packaged) -> None:
    alone, _, _ = packaged
    ours = templates.load(TEMPLATE)
    for section in ("Resources", "Outputs", "Parameters", "Conditions"):
        assert set(alone.get(section, {})) & set(ours.get(section, {})) == set(), section


def test_functions_run_on_a_runtime_lambda_still_accepts(
        packaged: Packaged) -> None:
    alone, _, _ = packaged
    assert {fn["Runtime"] for fn in functions(alone).values()} == {LAMBDA_RUNTIME}


def test_task_function_gets_the_stacks_role_network_and_names(
        packaged: Packaged) -> None:
    alone, _, outputs = packaged
    task = functions(alone)["Task"]
    assert task["Role"] == outputs["TaskFunctionRoleArn"]
    assert task["VpcConfig"] == {"SubnetIds": outputs["PrivateSubnetIds"].split(","),
                                 "SecurityGroupIds": [outputs["TaskFunctionSecurityGroupId"]]}
    assert task["Environment"]["Variables"]["UPDRAFT_BUCKET"] == outputs["BucketName"]
    assert "TaskRole" not in alone["Resources"]  # no Chalice-made role for it
    # one function per other deployed memory size (UPDRAFT_FUNCTION_SIZES), set up the same way
    for mb in (512, 1769, 10240):
        sized = functions(alone)[f"Task{mb}"]
        assert (sized["MemorySize"], sized["Handler"]) == (mb, f"app.task_{mb}")
        assert sized["Role"] == task["Role"] and sized["VpcConfig"] == task["VpcConfig"]
        assert f"Task{mb}Role" not in alone["Resources"]
    assert task["MemorySize"] == 3008


def sqs_sources(fn: dict[str, Any]) -> list[dict[str, Any]]:
    return [e["Properties"] for e in fn.get("Events", {}).values() if e["Type"] == "SQS"]


@pytest.mark.parametrize(("function", "queue"), [("Coordinator", "EventsQueue"), ("Submit", "SubmitQueue")])
def test_queue_triggers_name_the_stacks_queues_and_outlast_their_functions(
        packaged: Packaged, function: str, queue: str) -> None:
    alone, _, _ = packaged
    stack = templates.load(TEMPLATE)["Resources"][queue]["Properties"]
    fn = functions(alone)[function]
    (source,) = sqs_sources(fn)
    expected_name = stack["QueueName"]["Fn::Sub"].replace("${AppName}", APP_NAME).replace("${Stage}", STAGE)
    assert source["Queue"]["Fn::Sub"].endswith(f":{expected_name}")
    # Lambda refuses an SQS trigger whose queue hides messages for less than the function's timeout
    assert stack["VisibilityTimeout"] >= fn["Timeout"]


def test_roles_chalice_generates_grant_only_the_stages_resources(
        packaged: Packaged) -> None:
    alone, _, _ = packaged
    found = list(template_policies(alone))
    assert found, "Chalice generated no role policy to audit"
    problems = [f"{where}: {p}" for where, doc in found
                for p in policy_problems(doc, anchors=[f"{APP_NAME}-{STAGE}"], any_account=True)]
    assert problems == []


def test_functions_reserve_concurrency_and_the_triggers_cap_theirs(packaged: Packaged) -> None:
    """A burst of tasks cannot starve the control plane (docs/aws.md, Concurrency)."""
    alone, _, _ = packaged
    fns = functions(alone)
    assert all(isinstance(fn.get("ReservedConcurrentExecutions"), int) for fn in fns.values()), \
        {k: fn.get("ReservedConcurrentExecutions") for k, fn in fns.items()}
    coordinator = fns["Coordinator"]
    (source,) = sqs_sources(coordinator)
    assert 2 <= source["ScalingConfig"]["MaximumConcurrency"] <= coordinator["ReservedConcurrentExecutions"]
    (submit,) = sqs_sources(fns["Submit"])
    assert submit["ScalingConfig"]["MaximumConcurrency"] <= fns["Submit"]["ReservedConcurrentExecutions"]
