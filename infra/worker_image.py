"""Build the Fargate worker's image from workers/Dockerfile, with the same Debian tools the
Lambda layers carry (build arg TOOLS), push it to the stage's ECR repository under a new
tag (the repository's tags are immutable), and return it by digest: scripts/deploy passes
that to the stack (WorkerImage), so the task definition runs exactly the image pushed, and
workers started from then on run it."""

from __future__ import annotations

import base64
import re
import shutil
import subprocess
import time
from collections.abc import Callable, Mapping
from typing import Any

from infra.errors import DeployError
from infra.names import REPO
from layers.build_layer import LAYERS

DOCKERFILE = REPO / "workers" / "Dockerfile"
DIGEST_URI = re.compile(r"^[^@\s]+@sha256:[0-9a-f]{64}$")  # also the template's WorkerImage pattern
Runner = Callable[..., "subprocess.CompletedProcess[str]"]


def tools() -> str:
    """The Debian packages the layers carry: workers run the same programs as functions."""
    return " ".join(sorted({p for packages in LAYERS.values() for p in packages}))


def new_tag(now: float | None = None) -> str:
    """A tag no earlier push used (the repository refuses to move a tag)."""
    return time.strftime("build-%Y%m%d-%H%M%S", time.gmtime(time.time() if now is None else now))


def check_pinned(uri: str) -> str:
    """A worker image given by hand must be by digest: a tag can be moved under running workers."""
    if not DIGEST_URI.match(uri):
        raise DeployError(f"worker image {uri!r} is not pinned: give it by digest, REPOSITORY@sha256:<64 hex "
                          "digits> (`docker inspect --format '{{index .RepoDigests 0}}' IMAGE` prints it)")
    return uri


def commands(uri: str, registry: str) -> list[list[str]]:
    return [
        ["docker", "login", "--username", "AWS", "--password-stdin", registry],
        ["docker", "build", "--platform", "linux/amd64", "--build-arg", f"TOOLS={tools()}",
         "-f", str(DOCKERFILE), "-t", uri, str(REPO)],
        ["docker", "push", uri],
    ]


def digest_of(session: Any, repository_uri: str, tag: str) -> str:
    """`repository_uri@sha256:...` of the image ECR holds under `tag`."""
    name = repository_uri.split("/", 1)[1]
    try:
        (image,) = session.client("ecr").describe_images(repositoryName=name, imageIds=[{"imageTag": tag}])[
            "imageDetails"]
    except Exception as exc:
        raise DeployError(f"{repository_uri}:{tag} is not in the repository after the push: {exc}") from None
    return f"{repository_uri}@{image['imageDigest']}"


def push(session: Any, outputs: Mapping[str, str], say: Callable[[str], None] = print,
         run: Runner = subprocess.run, tag: str | None = None) -> str:
    """Build, push under a new tag, and return the image by digest."""
    if not DOCKERFILE.exists():
        raise DeployError(f"{DOCKERFILE.relative_to(REPO)} is missing: there is no worker image to build")
    if run is subprocess.run and shutil.which("docker") is None:
        raise DeployError("--push-worker needs docker on PATH (or pass --worker-image with an image you built)")
    tag = tag or new_tag()
    uri = f"{outputs['WorkerRepositoryUri']}:{tag}"
    auth = session.client("ecr").get_authorization_token()["authorizationData"][0]
    password = base64.b64decode(auth["authorizationToken"]).decode().split(":", 1)[1]
    login, build, upload = commands(uri, auth["proxyEndpoint"])
    for argv, stdin in ((login, password), (build, None), (upload, None)):
        say("$ " + " ".join(argv))
        done = run(argv, input=stdin, text=True, cwd=REPO, check=False)
        if done.returncode != 0:
            raise DeployError(f"`{' '.join(argv[:2])}` failed (exit {done.returncode})")
    pinned = digest_of(session, outputs["WorkerRepositoryUri"], tag)
    say(f"worker image pushed: {pinned}")
    return pinned
