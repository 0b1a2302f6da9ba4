"""Sizes that exist: a cloud stage's task functions (UPDRAFT_FUNCTION_SIZES) decide what
validation accepts, which function each attempt is invoked on, and where an out-of-memory
retry goes (the next size up, then a container)."""

from __future__ import annotations

import json
import random
from pathlib import Path
from typing import Any

import pytest

from chalicelib.attempt import AttemptResult
from chalicelib.backends.aws.config import AwsConfig
from chalicelib.backends.aws.launchers import FunctionLauncher, LaunchError
from chalicelib.backends.local.fs_blobs import FsBlobStore
from chalicelib.backends.local.sqlite_state import SqliteStateStore
from chalicelib.engine import events as ev
from chalicelib.engine.backoff import Backoff
from chalicelib.engine.coordinator import Coordinator, CoordinatorConfig
from chalicelib.engine.lifecycle import create_run
from chalicelib.engine.spec import RunSpec, SpecCache
from chalicelib.errors import ConfigError, WorkflowError
from chalicelib.workflow.formats import loads
from chalicelib.workflow.limits import DeployedSizes
from chalicelib.workflow.validate import validate

SMALL = DeployedSizes((512, 1769, 3008))


def _wf(*tasks: dict[str, Any]) -> Any:
    return loads(json.dumps({"name": "s", "tasks": list(tasks)}))


def _t(tid: str, memory_mb: int, placement: str = "function", **extra: Any) -> dict[str, Any]:
    return {"id": tid, "command": ["true"], "placement": placement, "resources": {"memory_mb": memory_mb}, **extra}


# ---- the list ---------------------------------------------------------------------------------

def test_sizes_parse_sorted_and_bad_lists_name_the_setting() -> None:
    assert DeployedSizes.parse("3008, 512,1769,512") == (512, 1769, 3008)
    with pytest.raises(ConfigError, match="UPDRAFT_FUNCTION_SIZES='512,big'"):
        DeployedSizes.parse("512,big")
    with pytest.raises(ConfigError, match="20000 MB is not a Lambda memory size"):
        DeployedSizes.parse("512,20000")
    assert SMALL.function_size_for(1000) == 1769 and SMALL.function_size_for(4000) is None
    assert SMALL.next_function_size(1769) == 3008 and SMALL.next_function_size(3008) is None


def test_config_names_one_function_per_size_and_checks_its_own() -> None:
    cfg = AwsConfig.from_env({"UPDRAFT_FUNCTION_SIZES": "512,3008,10240", "UPDRAFT_TASK_FUNCTION": "app-s-task"})
    assert cfg.sizes.function_mb == (512, 3008, 10240)
    assert [cfg.function_for(mb) for mb in cfg.sizes.function_mb] == ["app-s-task-512", "app-s-task",
                                                                      "app-s-task-10240"]
    with pytest.raises(ConfigError, match="UPDRAFT_TASK_FUNCTION_MB=3008 is not one of"):
        AwsConfig.from_env({"UPDRAFT_FUNCTION_SIZES": "512,1769"})
    with pytest.raises(ConfigError, match="Fargate does not run 256 CPU units with 4096 MiB"):
        AwsConfig.from_env({"UPDRAFT_WORKER_CPU": "256"})


# ---- validation -------------------------------------------------------------------------------

def test_validation_refuses_what_no_deployed_function_holds_and_names_the_largest() -> None:
    wf = _wf(_t("big", 6000), _t("ok", 3008), _t("anywhere", 6000, "auto"))
    validate(wf)  # Lambda itself could be configured to 6,000 MB
    with pytest.raises(WorkflowError) as err:
        validate(wf, sizes=SMALL)
    (problem,) = err.value.problems
    assert problem.task_id == "big" and problem.field == "resources.memory_mb"
    assert "3,008 MB" in problem.message and "UPDRAFT_FUNCTION_SIZES: 512, 1769, 3008" in problem.message


def test_validation_of_containers_follows_the_stage_largest_container() -> None:
    sizes = DeployedSizes((512,), container_cpus=4.0, container_memory_mb=30720)
    with pytest.raises(WorkflowError, match="4 vCPU / 30,720 MB"):
        validate(_wf(_t("c", 40000, "container")), sizes=sizes)


# ---- launches -----------------------------------------------------------------------------------

class Recorder:
    def __init__(self) -> None:
        self.names: list[str] = []

    def invoke(self, FunctionName: str, InvocationType: str, Payload: bytes) -> dict[str, Any]:
        self.names.append(FunctionName)
        return {"StatusCode": 202}


class Clients:
    def __init__(self) -> None:
        self.lambda_ = Recorder()


def _specs(*tasks: dict[str, Any]) -> SpecCache:
    specs = SpecCache(lambda run_id: (_ for _ in ()).throw(KeyError(run_id)))
    specs.put("r", RunSpec.of(_wf(*tasks)))
    return specs


def test_each_attempt_is_invoked_on_the_smallest_size_that_holds_it() -> None:
    cfg = AwsConfig.from_env({}, task_function="u-dev-task")
    clients = Clients()
    specs = _specs(_t("tiny", 300), _t("one", 1769), _t("mid", 2000), _t("big", 6000))
    launcher = FunctionLauncher(cfg, clients, specs=specs)  # type: ignore[arg-type]
    launcher.launch([ev.Launch("r", tid, 1, "function") for tid in ("tiny", "one", "mid", "big")])
    assert sorted(clients.lambda_.names) == sorted(["u-dev-task-512", "u-dev-task-1769", "u-dev-task",
                                                    "u-dev-task-10240"])
    clients.lambda_.names.clear()
    launcher.launch([ev.Launch("r", "one", 2, "function", {"memory_mb": 3008.0})])  # an escalated retry
    assert clients.lambda_.names == ["u-dev-task"]
    with pytest.raises(LaunchError, match="no deployed task function holds 20000 MB"):
        launcher.launch([ev.Launch("r", "one", 3, "function", {"memory_mb": 20000.0})])


# ---- out-of-memory retries ----------------------------------------------------------------------

class _Clock:
    t = 1000.0

    def now(self) -> float:
        return self.t


def _coordinator(tmp: Path, task: dict[str, Any], sizes: tuple[int, ...]) -> tuple[Coordinator, str]:
    store = SqliteStateStore(":memory:")
    blobs = FsBlobStore(str(tmp / "blobs"))
    run = create_run(RunSpec.of(_wf(task)), store, blobs, 1000.0)
    co = Coordinator(store, SpecCache.from_blobs(blobs), _Clock(),
                     CoordinatorConfig(backoff=Backoff(0.0, 0.0), function_sizes=sizes), random.Random(1))
    co.handle([ev.Start(run.run_id)])
    return co, run.run_id


def _oom(co: Coordinator, rid: str, attempt: int) -> ev.Launch:
    out = co.handle([ev.TaskFailed(rid, "a", attempt, "OOM", AttemptResult(exit_code=None))])
    return next(i for i in out if isinstance(i, ev.Launch))


def test_an_auto_task_out_of_memory_climbs_the_function_sizes_then_spills(tmp_path: Path) -> None:
    co, rid = _coordinator(tmp_path, _t("a", 1000, "auto", retries=1), (512, 1769, 3008, 10240))
    steps = [_oom(co, rid, attempt) for attempt in (1, 2, 3, 4)]
    assert [(s.placement, s.resources.get("memory_mb")) for s in steps] == [
        ("function", 3008.0), ("function", 10240.0), ("container", 20480.0), ("container", 40960.0)]
    # sizes and the spill are ours to get right: the task's one retry is left for the container
    assert [s.attempt for s in steps] == [2, 3, 4, 5]


def test_a_function_task_at_the_largest_size_is_not_sent_where_no_function_exists(tmp_path: Path) -> None:
    co, rid = _coordinator(tmp_path, _t("a", 1769, "function", retries=2), (512, 1769, 3008))
    first = _oom(co, rid, 1)
    assert (first.placement, first.resources) == ("function", {"memory_mb": 3008.0})
    second = _oom(co, rid, 2)  # already on the largest: its own retry, on the largest
    assert (second.placement, second.resources) == ("function", {"memory_mb": 3008.0})


def test_an_auto_task_bigger_than_every_function_starts_in_a_container(tmp_path: Path) -> None:
    store = SqliteStateStore(":memory:")
    run = create_run(RunSpec.of(_wf(_t("a", 6000, "auto"))), store, FsBlobStore(str(tmp_path)), 0.0,
                     function_limits=SMALL.function_limits())
    assert store.get_task(run.run_id, "a").placement == "container"


# ---- plan and simulate ------------------------------------------------------------------------

def test_plans_choose_among_the_deployed_function_sizes_only() -> None:
    from chalicelib.planner.planner import FUNCTION, Objective, Planner
    from chalicelib.planner.platform import Platform

    tasks = [{"id": f"t{i}", "command": ["t"], "placement": "auto", "outputs": [f"o{i}"],
              "hints": {"runtime_s": 5.0 * (i + 1)}} for i in range(6)]
    wf = loads(json.dumps({"name": "p", "tasks": tasks}))
    seen: set[int] = set()
    for sizes in ((512, 1769, 3008, 10240), (256, 2048)):
        planner = Planner(wf, platform=Platform(function_sizes=sizes))
        for objective in (Objective("cost"), Objective("makespan")):
            used = {c.memory_mb for c in planner.plan(objective).choices.values() if c.placement == FUNCTION}
            assert used <= set(sizes), (sizes, objective, used)
            seen |= used
    assert {1769, 2048} <= seen


def test_the_cli_takes_the_deployed_sizes_from_the_environment_or_an_option(monkeypatch: pytest.MonkeyPatch) -> None:
    import argparse

    from chalicelib.planner.commands import _platform

    args = argparse.Namespace(max_workers=None, function_concurrency=None, arch=None, fixed_workers=None,
                              function_sizes=None, batch_window=None)
    assert _platform(args).function_sizes == (512, 1769, 3008, 10240)
    monkeypatch.setenv("UPDRAFT_FUNCTION_SIZES", "1769,512")
    assert _platform(args).function_sizes == (512, 1769)
    args.function_sizes = "3008"
    assert _platform(args).function_sizes == (3008,)
    args.function_sizes = "lots"
    with pytest.raises(ConfigError, match="--function-sizes='lots'"):
        _platform(args)


# ---- container sizes ---------------------------------------------------------------------------

class FakeEcs:
    def __init__(self) -> None:
        self.runs: list[dict[str, Any]] = []

    def describe_services(self, cluster: str, services: list[str]) -> dict[str, Any]:
        return {"services": [{"taskDefinition": "arn:td/updraft-dev-worker:3", "networkConfiguration": {
            "awsvpcConfiguration": {"subnets": ["s-1"], "securityGroups": ["g-1"]}}}]}

    def run_task(self, **kwargs: Any) -> dict[str, Any]:
        self.runs.append(kwargs)
        return {"tasks": [{"taskArn": f"arn:task/{len(self.runs)}"}], "failures": []}


class FakeQueue:
    def __init__(self) -> None:
        self.sent: list[str] = []

    def send(self, bodies: list[str], delay_s: float = 0.0) -> None:
        self.sent += bodies


def test_containers_the_worker_service_holds_are_queued_bigger_ones_get_a_task_of_their_size() -> None:
    from chalicelib.backends.aws.launchers import ONE_TASK_ENV, ContainerLauncher

    class EcsClients:
        ecs = FakeEcs()

    cfg = AwsConfig.from_env({}, worker_cpu=1024, worker_memory_mb=4096)
    specs = _specs(_t("fits", 4096, "container"), _t("wide", 1000, "container", ), _t("huge", 8000, "container"))
    queue = FakeQueue()
    launcher = ContainerLauncher(queue, None, cfg, EcsClients(), specs)  # type: ignore[arg-type]
    launcher.launch([ev.Launch("r", "fits", 1, "container"), ev.Launch("r", "huge", 1, "container"),
                     ev.Launch("r", "wide", 1, "container", {"cpus": 3.0}),
                     ev.Launch("r", "fits", 2, "container", {"memory_mb": 8192.0})])  # an OOM retry, doubled
    assert [json.loads(b)["task_id"] for b in queue.sent] == ["fits"]
    runs = EcsClients.ecs.runs
    assert [(r["overrides"]["cpu"], r["overrides"]["memory"]) for r in runs] == [
        ("1024", "8192"), ("4096", "8192"), ("1024", "8192")]
    first = runs[0]
    assert first["taskDefinition"] == "arn:td/updraft-dev-worker:3" and first["launchType"] == "FARGATE"
    assert first["networkConfiguration"]["awsvpcConfiguration"]["subnets"] == ["s-1"]
    env = {e["name"]: e["value"] for e in first["overrides"]["containerOverrides"][0]["environment"]}
    assert json.loads(env[ONE_TASK_ENV]) == {"run_id": "r", "task_id": "huge", "attempt": 1}
    assert (env["UPDRAFT_WORKER_CPU"], env["UPDRAFT_WORKER_MEMORY_MB"]) == ("1024", "8192")


def test_a_container_bigger_than_the_stage_allows_fails_its_launch_naming_the_largest() -> None:
    from chalicelib.backends.aws.launchers import ContainerLauncher

    class EcsClients:
        ecs = FakeEcs()

    cfg = AwsConfig.from_env({}, container_max_cpu=2048, container_max_memory_mb=16384)
    launcher = ContainerLauncher(FakeQueue(), None, cfg, EcsClients(),  # type: ignore[arg-type]
                                 _specs(_t("huge", 20000, "container")))
    with pytest.raises(LaunchError, match="largest: 2 vCPU / 16384 MB"):
        launcher.launch([ev.Launch("r", "huge", 1, "container")])
    assert EcsClients.ecs.runs == []


def test_a_one_task_worker_runs_its_one_message_and_has_nothing_to_acknowledge() -> None:
    from workers.worker import OneMessage

    queue = OneMessage('{"run_id": "r", "task_id": "t", "attempt": 2}')
    (msg,) = queue.receive(1, wait_s=20)
    assert json.loads(msg.body)["attempt"] == 2 and queue.receive(1) == [] and queue.backlog() == 0
    queue.delete([msg])
    queue.extend(msg, 60)
    queue.release(msg)
