"""--push-worker: workers/Dockerfile built with the layers' tools, pushed to the stack's
repository under the tag the task definition runs; docker is replaced by a recorder."""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Any

import pytest

from infra import worker_image
from infra.errors import DeployError

OUTPUTS = {"WorkerRepositoryUri": "123456789012.dkr.ecr.us-east-1.amazonaws.com/updraft-ci-worker"}


class Docker:
    def __init__(self, fail: str = "") -> None:
        self.calls: list[tuple[list[str], str | None]] = []
        self.fail = fail

    def __call__(self, argv: list[str], input: str | None = None, **kwargs: Any) -> subprocess.CompletedProcess[str]:
        self.calls.append((argv, input))
        return subprocess.CompletedProcess(argv, 1 if argv[1] == self.fail else 0)


def test_builds_with_the_layer_tools_and_pushes_the_tag_the_stack_runs(aws: Any) -> None:
    docker = Docker()
    uri = worker_image.push(aws, OUTPUTS, say=lambda line: None, run=docker)
    assert uri == OUTPUTS["WorkerRepositoryUri"] + ":latest"
    (login, password), (build, _), (push, _) = docker.calls
    assert login[:2] == ["docker", "login"] and password  # the ECR token's password, on stdin only
    assert password not in " ".join(login)
    assert "TOOLS=montage ncbi-blast+" in build and build[build.index("-t") + 1] == uri
    assert build[build.index("-f") + 1] == str(worker_image.DOCKERFILE)
    assert push == ["docker", "push", uri]


def test_a_failed_build_stops_before_the_push(aws: Any) -> None:
    docker = Docker(fail="build")
    with pytest.raises(DeployError, match="docker build"):
        worker_image.push(aws, OUTPUTS, say=lambda line: None, run=docker)
    assert [argv[1] for argv, _ in docker.calls] == ["login", "build"]


def test_a_missing_dockerfile_is_named(aws: Any, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setattr(worker_image, "DOCKERFILE", tmp_path / "workers" / "Dockerfile")
    monkeypatch.setattr(worker_image, "REPO", tmp_path)
    with pytest.raises(DeployError, match="workers/Dockerfile is missing"):
        worker_image.push(aws, OUTPUTS, say=lambda line: None, run=Docker())
