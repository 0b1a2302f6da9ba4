"""scripts/deploy and scripts/destroy end to end in moto, with `chalice deploy/delete`
replaced by a stand-in that creates/deletes the task function from the Chalice config the
way Chalice does (moto cannot run Chalice's deployer against itself from a subprocess)."""

from __future__ import annotations

import json
import subprocess
import zipfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest

from infra import chalice_config
from infra.cfn import Stacks
from infra.deploy import deploy
from infra.destroy import destroy
from infra.errors import RefusedError
from infra.names import MOUNT_PATH, stack_name
from infra.postdeploy import EPHEMERAL_MB, PARTIAL_BATCHES, configure_task_function, enable_partial_batches

STAGE = "ci"


class FakeChalice:
    """`chalice deploy|delete --stage S`: the task function as the config describes it."""

    def __init__(self, session: Any, config_path: Path) -> None:
        self.session, self.config_path = session, config_path
        self.calls: list[list[str]] = []
        self.envs: list[dict[str, str]] = []
        self.states: list[dict[str, bool]] = []  # safety() right after each `chalice deploy`

    @property
    def deployed(self) -> Path:
        return self.config_path.parent / "deployed" / f"{STAGE}.json"

    def __call__(self, args: Sequence[str], env: dict[str, str]) -> int:
        self.calls.append(list(args))
        self.envs.append(env)
        entry = json.loads(self.config_path.read_text())["stages"][STAGE]
        env = entry["environment_variables"]
        name, coordinator = env["UPDRAFT_TASK_FUNCTION"], f"updraft-{STAGE}-coordinator"
        lam = self.session.client("lambda")

        def environment(function: str) -> dict[str, Any]:  # Chalice sends the whole environment
            own = entry.get("lambda_functions", {}).get(function, {}).get("environment_variables", {})
            return {"Variables": {**env, **own}}

        sized = [f for f in chalice_config.task_functions(json.loads(self.config_path.read_text()), STAGE)
                 if f != "task"]  # task-<mb>: one function per other deployed memory size
        if args[0] == "deploy" and self.deployed.exists():
            for fn, short in ((name, "task"), (coordinator, "coordinator"),
                              *((name + f[len("task"):], f) for f in sized)):
                lam.update_function_configuration(FunctionName=fn, Environment=environment(short))
        elif args[0] == "deploy":
            task = entry["lambda_functions"]["task"]
            code = {"ZipFile": make_zip({"app.py": "x = 1\n"})}
            for fn, short in ((name, "task"), *((name + f[len("task"):], f) for f in sized)):
                conf = entry["lambda_functions"][short]
                lam.create_function(
                    FunctionName=fn, Runtime="python3.12", Handler=f"app.{short.replace('-', '_')}",
                    Role=conf["iam_role_arn"], Code=code, Layers=conf.get("layers", []),
                    Environment=environment(short), MemorySize=conf.get("lambda_memory_size", 3008),
                    VpcConfig={"SubnetIds": conf["subnet_ids"], "SecurityGroupIds": conf["security_group_ids"]})
            lam.create_function(FunctionName=coordinator, Runtime="python3.12", Handler="app.coordinator",
                                Role=task["iam_role_arn"], Code=code, Environment=environment("coordinator"))
            queue_arn = self.session.client("sqs").get_queue_attributes(
                QueueUrl=env["UPDRAFT_EVENTS_QUEUE"], AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
            lam.create_event_source_mapping(EventSourceArn=queue_arn, FunctionName=coordinator, BatchSize=10)
            self.deployed.parent.mkdir(exist_ok=True)
            self.deployed.write_text("{}")
        elif args[0] == "delete":
            for fn in (name, coordinator, *(name + f[len("task"):] for f in sized)):
                lam.delete_function(FunctionName=fn)
            self.deployed.unlink()
        if args[0] == "deploy":
            self.states.append(safety(self.session))
        return 0


def safety(session: Any) -> dict[str, bool]:
    """Whether the task function and the coordinator are in a state that loses nothing."""
    lam = session.client("lambda")
    task = lam.get_function_configuration(FunctionName=f"updraft-{STAGE}-task")
    coordinator = lam.get_function_configuration(FunctionName=f"updraft-{STAGE}-coordinator")
    (mapping,) = lam.list_event_source_mappings(FunctionName=f"updraft-{STAGE}-coordinator")["EventSourceMappings"]
    task_env = task.get("Environment", {}).get("Variables", {})
    coordinator_env = coordinator.get("Environment", {}).get("Variables", {})
    return {
        # a cache root only together with the mount it points into
        "task": "UPDRAFT_CACHE_ROOT" not in task_env or bool(task.get("FileSystemConfigs")),
        # partial batches only once the trigger honours them (otherwise the batch raises)
        "coordinator": coordinator_env.get("UPDRAFT_PARTIAL_BATCH") == "0"
        or PARTIAL_BATCHES in (mapping.get("FunctionResponseTypes") or []),
        # and once postdeploy ran, both on
        "cache": task_env.get("UPDRAFT_CACHE_ROOT") == MOUNT_PATH and bool(task.get("FileSystemConfigs")),
        "partial": coordinator_env.get("UPDRAFT_PARTIAL_BATCH") == "1",
    }


def make_zip(files: dict[str, str]) -> bytes:
    import io

    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        for name, text in files.items():
            z.writestr(name, text)
    return buf.getvalue()


@pytest.fixture
def layer_dir(tmp_path: Path) -> Path:
    folder = tmp_path / "dist"
    folder.mkdir()
    (folder / "montage.zip").write_bytes(make_zip({"bin/mImgtbl": "#!/bin/sh\n"}))
    return folder


def run_deploy(aws: Any, stacks: Stacks, config_path: Path, layer_dir: Path, chalice: FakeChalice,
               said: list[str]) -> dict[str, str]:
    # moto has no GetAccountSettings: the concurrency check is tests/deploy/test_concurrency.py's
    return deploy(STAGE, aws, {}, config_path=config_path, layer_dir=layer_dir, chalice=chalice,
                  say=said.append, stacks=stacks, sleep=lambda s: None, check_concurrency=lambda *_: None)


def test_deploy_builds_a_working_stage_and_is_repeatable(aws: Any, stacks: Stacks, config_path: Path,
                                                        layer_dir: Path, said: list[str]) -> None:
    chalice = FakeChalice(aws, config_path)
    outputs = run_deploy(aws, stacks, config_path, layer_dir, chalice, said)
    assert chalice.calls == [["deploy", "--stage", STAGE]]
    assert chalice.envs[0]["AWS_DEFAULT_REGION"] == "us-east-1"
    params = {p["ParameterKey"]: p["ParameterValue"] for p in aws.client("cloudformation").describe_stacks(
        StackName=stack_name(STAGE))["Stacks"][0]["Parameters"]}
    assert params["TaskFunctionDeployed"] == "true"  # destinations requested once the function existed
    fn = aws.client("lambda").get_function_configuration(FunctionName=outputs["TaskFunctionName"])
    assert fn["FileSystemConfigs"] == [{"Arn": outputs["AccessPointArn"], "LocalMountPath": MOUNT_PATH}]
    assert fn["EphemeralStorage"] == {"Size": EPHEMERAL_MB}
    (mapping,) = aws.client("lambda").list_event_source_mappings(FunctionName="updraft-ci-coordinator")[
        "EventSourceMappings"]
    assert mapping["FunctionResponseTypes"] == [PARTIAL_BATCHES]
    (layer,) = json.loads(config_path.read_text())["stages"][STAGE]["lambda_functions"]["task"]["layers"]
    assert ":layer:updraft-ci-montage:" in layer
    assert [f["Layers"] for f in [fn]] and fn["Layers"][0]["Arn"] == layer
    # every other deployed memory size is a function of its own, set up as the stack sets up `task`
    lam = aws.client("lambda")
    queue_arn = aws.client("sqs").get_queue_attributes(
        QueueUrl=outputs["EventsQueueUrl"], AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    for mb in (512, 1769, 10240):
        sized = lam.get_function_configuration(FunctionName=f"{outputs['TaskFunctionName']}-{mb}")
        assert sized["MemorySize"] == mb and sized["Role"] == fn["Role"]
        assert sized["FileSystemConfigs"] == fn["FileSystemConfigs"]
        assert sized["Layers"][0]["Arn"] == layer
        invoke = lam.get_function_event_invoke_config(FunctionName=sized["FunctionName"])
        assert invoke["MaximumRetryAttempts"] == 0
        assert invoke["DestinationConfig"]["OnFailure"]["Destination"] == queue_arn
    groups = {g["logGroupName"] for g in aws.client("logs").describe_log_groups()["logGroups"]}
    assert f"/aws/lambda/{outputs['TaskFunctionName']}-512" in groups

    # the memo signing key: written once, where only the runners read it (infra/memo_key.py)
    s3 = aws.client("s3")
    memo_key = s3.get_object(Bucket=outputs["BucketName"], Key=outputs["MemoKeyObject"])["Body"].read()
    assert len(memo_key) == 64 and int(memo_key, 16) > 0
    env = json.loads(config_path.read_text())["stages"][STAGE]["environment_variables"]
    assert env["UPDRAFT_MEMO_KEY_OBJECT"] == outputs["MemoKeyObject"] == "keys/memo-key"
    assert "UPDRAFT_MEMO_KEY" not in env  # no secret in the configuration

    said.clear()
    run_deploy(aws, stacks, config_path, layer_dir, chalice, said)
    assert s3.get_object(Bucket=outputs["BucketName"], Key=outputs["MemoKeyObject"])["Body"].read() == memo_key
    assert any(line.endswith("memo-key: kept") for line in said), said
    # right after each `chalice deploy`, before postdeploy: nothing unsafe; after it: all on
    assert [(s["task"], s["coordinator"]) for s in chalice.states] == [(True, True), (True, True)]
    assert chalice.states[0]["cache"] is False and chalice.states[0]["partial"] is False
    assert safety(aws) == {"task": True, "coordinator": True, "cache": True, "partial": True}
    assert any("unchanged" in line for line in said), said  # the same zip is not republished
    # `chalice deploy` sent the environment again (no cache root, whole batches): postdeploy put them back
    assert any(line.startswith(f"updraft-{STAGE}-task: {MOUNT_PATH} <- ") for line in said), said
    assert any("coordinator: its events-queue trigger reports" in line for line in said), said
    assert any("coordinator: reports failed events one by one" in line for line in said), said
    said.clear()
    configure_task_function(aws, outputs, said.append, sleep=lambda s: None)
    assert enable_partial_batches(aws, STAGE, outputs, said.append, sleep=lambda s: None) is False
    assert any("already set" in line for line in said), said
    assert json.loads(config_path.read_text())["stages"][STAGE]["lambda_functions"]["task"]["layers"] == [layer]


def test_destroy_refuses_to_lose_data_then_removes_everything(aws: Any, stacks: Stacks, config_path: Path,
                                                              layer_dir: Path, said: list[str]) -> None:
    chalice = FakeChalice(aws, config_path)
    outputs = run_deploy(aws, stacks, config_path, layer_dir, chalice, said)
    aws.client("s3").put_object(Bucket=outputs["BucketName"], Key="runs/r1/data/mosaic.fits", Body=b"x")
    aws.client("logs").create_log_group(logGroupName=f"/aws/lambda/updraft-{STAGE}-coordinator")
    aws.client("logs").create_log_group(logGroupName="/aws/lambda/someone-else")
    asked: list[bool] = []

    with pytest.raises(RefusedError, match="--delete-data"):
        destroy(STAGE, aws, config_path=config_path, chalice=chalice, say=said.append, stacks=stacks,
                sleep=lambda s: None, ask=lambda: asked.append(True))
    assert asked == [] and chalice.calls[-1][0] == "deploy"  # nothing deleted, nobody asked
    assert stacks.status(stack_name(STAGE)) is not None

    destroy(STAGE, aws, delete_data=True, config_path=config_path, chalice=chalice, say=said.append,
            stacks=stacks, sleep=lambda s: None, ask=lambda: asked.append(True))
    assert asked == [True]
    assert chalice.calls[-1] == ["delete", "--stage", STAGE]
    assert stacks.status(stack_name(STAGE)) is None
    assert aws.client("lambda").list_layers()["Layers"] == []
    groups = [g["logGroupName"] for g in aws.client("logs").describe_log_groups()["logGroups"]]
    assert groups == ["/aws/lambda/someone-else"]
    config = json.loads(config_path.read_text())
    assert chalice_config.stack_record(config, STAGE) is None
    assert "UPDRAFT_TABLE" not in config["stages"].get(STAGE, {}).get("environment_variables", {})


def test_push_worker_pins_the_image_by_digest_before_any_function_exists(
        aws: Any, stacks: Stacks, config_path: Path, layer_dir: Path, said: list[str],
        monkeypatch: pytest.MonkeyPatch) -> None:
    from infra import preflight, worker_image
    from tests.deploy.test_worker_image import Docker

    real_push = worker_image.push
    monkeypatch.setattr(worker_image, "push",
                        lambda sess, outputs, say: real_push(sess, outputs, say, run=Docker(sess)))
    # The stand-in Docker above answers the push; the tool check asks the same stand-in's daemon.
    real_check = preflight.check_tools
    monkeypatch.setattr(preflight, "check_tools", lambda push_worker=False: real_check(
        push_worker, which=lambda name: f"/usr/bin/{name}",
        run=lambda *a, **k: subprocess.CompletedProcess(a, 0, "27.0.0\n", "")))
    seen: list[str] = []

    class ChaliceSeeingTheWorker(FakeChalice):
        def __call__(self, args: Sequence[str], env: dict[str, str]) -> int:
            ecs = self.session.client("ecs")
            (arn,) = ecs.list_task_definitions(familyPrefix=f"updraft-{STAGE}-worker", sort="DESC")[
                "taskDefinitionArns"][:1]
            definition = ecs.describe_task_definition(taskDefinition=arn)["taskDefinition"]
            seen.append(definition["containerDefinitions"][0]["image"])
            return super().__call__(args, env)

    outputs = deploy(STAGE, aws, {}, config_path=config_path, layer_dir=layer_dir, push_worker=True,
                     chalice=ChaliceSeeingTheWorker(aws, config_path), say=said.append, stacks=stacks,
                     sleep=lambda s: None, check_concurrency=lambda *_: None)
    (image,) = aws.client("ecr").describe_images(repositoryName=f"updraft-{STAGE}-worker")["imageDetails"]
    pinned = f"{outputs['WorkerRepositoryUri']}@{image['imageDigest']}"
    assert seen == [pinned]  # the task definition ran the pushed digest before `chalice deploy`
    env = aws.client("lambda").get_function_configuration(FunctionName=f"updraft-{STAGE}-coordinator")[
        "Environment"]["Variables"]
    assert "UPDRAFT_MAX_WORKERS" not in env  # the stage's own limit applies
    assert stack_params(aws)["WorkerImage"] == pinned
    said.clear()
    run_deploy(aws, stacks, config_path, layer_dir, FakeChalice(aws, config_path), said)
    assert stack_params(aws)["WorkerImage"] == pinned  # a deploy without --push-worker keeps the pinned image
    assert not any("no worker image yet" in line for line in said), said


def stack_params(aws: Any) -> dict[str, str]:
    stack = aws.client("cloudformation").describe_stacks(StackName=stack_name(STAGE))["Stacks"][0]
    return {p["ParameterKey"]: p["ParameterValue"] for p in stack["Parameters"]}


def test_a_stage_without_a_worker_image_says_so(aws: Any, stacks: Stacks, config_path: Path, layer_dir: Path,
                                                said: list[str]) -> None:
    run_deploy(aws, stacks, config_path, layer_dir, FakeChalice(aws, config_path), said)
    assert stack_params(aws).get("WorkerImage", "") == ""
    assert any("no worker image yet: nothing starts workers" in line for line in said), said
    # the coordinator (like the API, submit and the sweeper) would scale workers up: it may not
    env = aws.client("lambda").get_function_configuration(FunctionName=f"updraft-{STAGE}-coordinator")[
        "Environment"]["Variables"]
    assert env["UPDRAFT_MAX_WORKERS"] == "0"
