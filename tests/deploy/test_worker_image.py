"""--push-worker: workers/Dockerfile built with the layers' tools, pushed to the stack's
repository under the tag the task definition runs; docker is replaced by a recorder."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path
from typing import Any

import pytest

from infra import worker_image
from infra.errors import DeployError
from infra.names import REPO

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


# ---- the image's definition ------------------------------------------------------------------

def dockerfile_default(arg: str) -> str:
    for line in worker_image.DOCKERFILE.read_text().splitlines():
        if line.startswith(f"ARG {arg}="):
            return line.split("=", 1)[1].strip().strip('"')
    raise AssertionError(f"no ARG {arg}= in {worker_image.DOCKERFILE}")


def test_a_plain_docker_build_installs_the_layers_tools() -> None:
    assert dockerfile_default("TOOLS") == worker_image.tools() != ""


def _pattern(glob: str) -> re.Pattern[str]:
    """A .dockerignore pattern (Go filepath.Match plus `**`) as a regex over a path or its parents."""
    out, i = "", 0
    while i < len(glob):
        if glob.startswith("**", i):
            out, i = out + ".*", i + 2
        elif glob[i] == "*":
            out, i = out + "[^/]*", i + 1
        elif glob[i] == "?":
            out, i = out + "[^/]", i + 1
        else:
            out, i = out + re.escape(glob[i]), i + 1
    return re.compile(f"^{out}(/.*)?$")


def sent_to_docker(path: str, rules: list[str]) -> bool:
    """Whether `docker build` sends `path` of the context: the last matching rule decides."""
    sent = True
    for rule in rules:
        negated = rule.startswith("!")
        if _pattern(rule.lstrip("!").strip("/")).match(path):
            sent = negated
    return sent


def test_the_build_context_holds_what_the_dockerfile_copies_and_nothing_else() -> None:
    rules = [line.strip() for line in (REPO / ".dockerignore").read_text().splitlines()
             if line.strip() and not line.startswith("#")]
    copied = [line.split()[1] for line in worker_image.DOCKERFILE.read_text().splitlines() if line.startswith("COPY ")]
    assert copied and all(sent_to_docker(src.rstrip("/"), rules) for src in copied), copied
    for kept in ("workers/worker.py", "chalicelib/backends/aws/task_function.py", "workers/requirements.txt"):
        assert sent_to_docker(kept, rules), kept
    for left_out in (".git/HEAD", "layers/dist/montage.zip", ".venv/bin/python", "tests/deploy/__init__.py",
                     "docs/img/dashboard.png", ".updraft/state.db", "chalicelib/__pycache__/errors.cpython-311.pyc",
                     "workers/__pycache__/worker.cpython-311.pyc", ".chalice/config.json"):
        assert not sent_to_docker(left_out, rules), left_out
