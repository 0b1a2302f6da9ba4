"""Build the Fargate worker's image from workers/Dockerfile, with the same Debian tools the
Lambda layers carry (build arg TOOLS), and push it to the stage's ECR repository as :latest,
which the task definition runs (stack parameter WorkerImage empty). Workers start from the
queue's backlog, so the next ones started run the new image."""

from __future__ import annotations

import base64
import shutil
import subprocess
from collections.abc import Callable, Mapping
from typing import Any

from infra.errors import DeployError
from infra.names import REPO
from layers.build_layer import LAYERS

DOCKERFILE = REPO / "workers" / "Dockerfile"
Runner = Callable[..., "subprocess.CompletedProcess[str]"]


def tools() -> str:
    """The Debian packages the layers carry: workers run the same programs as functions."""
    return " ".join(sorted({p for packages in LAYERS.values() for p in packages}))


def commands(uri: str, registry: str) -> list[list[str]]:
    return [
        ["docker", "login", "--username", "AWS", "--password-stdin", registry],
        ["docker", "build", "--platform", "linux/amd64", "--build-arg", f"TOOLS={tools()}",
         "-f", str(DOCKERFILE), "-t", uri, str(REPO)],
        ["docker", "push", uri],
    ]


def push(session: Any, outputs: Mapping[str, str], say: Callable[[str], None] = print,
         run: Runner = subprocess.run) -> str:
    if not DOCKERFILE.exists():
        raise DeployError(f"{DOCKERFILE.relative_to(REPO)} is missing: there is no worker image to build")
    if run is subprocess.run and shutil.which("docker") is None:
        raise DeployError("--push-worker needs docker on PATH (or pass --worker-image with an image you built)")
    uri = outputs["WorkerRepositoryUri"] + ":latest"
    auth = session.client("ecr").get_authorization_token()["authorizationData"][0]
    password = base64.b64decode(auth["authorizationToken"]).decode().split(":", 1)[1]
    login, build, upload = commands(uri, auth["proxyEndpoint"])
    for argv, stdin in ((login, password), (build, None), (upload, None)):
        say("$ " + " ".join(argv))
        done = run(argv, input=stdin, text=True, cwd=REPO, check=False)
        if done.returncode != 0:
            raise DeployError(f"`{' '.join(argv[:2])}` failed (exit {done.returncode})")
    say(f"worker image pushed: {uri}")
    return uri
