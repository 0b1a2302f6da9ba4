"""--push-worker: workers/Dockerfile built with the layers' tools, pushed to the stack's
repository under the tag the task definition runs; docker is replaced by a recorder."""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path
from typing import Any

import pytest

from infra import worker_image
from infra.bootstrap import bootstrap
from infra.cfn import Stacks
from infra.errors import DeployError
from infra.names import REPO, TEMPLATE, stack_name
from tests.deploy import templates

REPOSITORY = "updraft-ci-worker"
OUTPUTS = {"WorkerRepositoryUri": f"123456789012.dkr.ecr.us-east-1.amazonaws.com/{REPOSITORY}"}
TAG = "build-20261207-013000"


class Docker:
    """Records docker's commands; `push` puts a manifest into moto's ECR under the pushed tag."""

    def __init__(self, session: Any, fail: str = "") -> None:
        self.calls: list[tuple[list[str], str | None]] = []
        self.fail = fail
        self.session = session

    def __call__(self, argv: list[str], input: str | None = None, **kwargs: Any) -> subprocess.CompletedProcess[str]:
        self.calls.append((argv, input))
        if argv[1] == self.fail:
            return subprocess.CompletedProcess(argv, 1)
        if argv[1] == "push":
            repo_tag = argv[2].rsplit("/", 1)[1]
            repository, tag = repo_tag.split(":")
            manifest = {"schemaVersion": 2, "mediaType": "application/vnd.docker.distribution.manifest.v2+json",
                        "config": {"digest": "sha256:" + "c" * 64, "size": 1, "mediaType": "x"}, "layers": []}
            self.session.client("ecr").put_image(repositoryName=repository, imageManifest=json.dumps(manifest),
                                                 imageTag=tag)
        return subprocess.CompletedProcess(argv, 0)


@pytest.fixture
def repository(aws: Any) -> Any:
    aws.client("ecr").create_repository(repositoryName=REPOSITORY, imageTagMutability="IMMUTABLE")
    return aws


def test_builds_with_the_layer_tools_pushes_a_new_tag_and_returns_the_digest(repository: Any) -> None:
    docker = Docker(repository)
    pinned = worker_image.push(repository, OUTPUTS, say=lambda line: None, run=docker, tag=TAG)
    (image,) = repository.client("ecr").describe_images(repositoryName=REPOSITORY)["imageDetails"]
    assert pinned == f"{OUTPUTS['WorkerRepositoryUri']}@{image['imageDigest']}"
    assert worker_image.DIGEST_URI.match(pinned)
    (login, password), (build, _), (push, _) = docker.calls
    uri = f"{OUTPUTS['WorkerRepositoryUri']}:{TAG}"
    assert login[:2] == ["docker", "login"] and password  # the ECR token's password, on stdin only
    assert password not in " ".join(login)
    assert "TOOLS=montage ncbi-blast+" in build and build[build.index("-t") + 1] == uri
    assert build[build.index("-f") + 1] == str(worker_image.DOCKERFILE)
    assert push == ["docker", "push", uri]


def test_each_push_gets_a_tag_of_its_own() -> None:
    assert worker_image.new_tag(0) == "build-19700101-000000"
    assert worker_image.new_tag(1) != worker_image.new_tag(0)


def test_a_failed_build_stops_before_the_push(repository: Any) -> None:
    docker = Docker(repository, fail="build")
    with pytest.raises(DeployError, match="docker build"):
        worker_image.push(repository, OUTPUTS, say=lambda line: None, run=docker)
    assert [argv[1] for argv, _ in docker.calls] == ["login", "build"]


def test_a_missing_dockerfile_is_named(aws: Any, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setattr(worker_image, "DOCKERFILE", tmp_path / "workers" / "Dockerfile")
    monkeypatch.setattr(worker_image, "REPO", tmp_path)
    with pytest.raises(DeployError, match="workers/Dockerfile is missing"):
        worker_image.push(aws, OUTPUTS, say=lambda line: None, run=Docker(aws))


@pytest.mark.parametrize("given", ["updraft-worker:latest", "123456789012.dkr.ecr.us-east-1.amazonaws.com/w",
                                   "w@sha256:abc"])
def test_a_worker_image_by_tag_is_refused_in_one_line(given: str) -> None:
    with pytest.raises(DeployError, match="is not pinned: give it by digest"):
        worker_image.check_pinned(given)


def test_the_templates_image_pattern_is_the_scripts() -> None:
    pattern = templates.load(TEMPLATE)["Parameters"]["WorkerImage"]["AllowedPattern"]
    assert pattern == "^$|" + worker_image.DIGEST_URI.pattern


def test_bootstrap_refuses_an_image_by_tag_before_touching_the_stack(aws: Any, stacks: Stacks,
                                                                    config_path: Path) -> None:
    with pytest.raises(DeployError, match="'updraft-worker:latest' is not pinned"):
        bootstrap("ci", aws, {"WorkerImage": "updraft-worker:latest"}, config_path, say=lambda line: None,
                  stacks=stacks)
    assert stacks.status(stack_name("ci")) is None


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
