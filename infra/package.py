"""scripts/deploy STAGE --package-only DIR: everything a deploy of STAGE uploads, on disk.

    DIR/chalice/deployment.zip        the functions' code (app.py, chalicelib/), from `chalice package`
    DIR/chalice/layer-deployment.zip  Chalice's managed layer: requirements.txt for the runtime
    DIR/chalice/sam.json              the functions, their triggers, memory, timeouts, environment
    DIR/stack.yaml                    the stage's stack template (scripts/bootstrap)
    DIR/layers/<name>.zip             the tool layers scripts/deploy would publish (layers/dist), if any
    DIR/worker/                       the worker image's build context: what workers/Dockerfile COPYs
    DIR/manifest.json                 runtime, stage, every file with its size and SHA-256

Nothing touches AWS. Built for the pinned Lambda runtime (infra/chalice_cli.py) from the
project's Python, and checked: the managed layer must hold every requirement (and theirs)
for that runtime, and workers/requirements.txt must install for the worker image's Python;
otherwise the command fails naming the package, and DIR is not written.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import zipfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

from infra import dependencies, layers
from infra.chalice_cli import runtime
from infra.chalice_config import load
from infra.errors import DeployError
from infra.layers import sha256
from infra.names import CHALICE_CONFIG, REPO, TEMPLATE, check_stage
from infra.worker_image import DOCKERFILE, tools

WORKER_REQUIREMENTS = REPO / "workers" / "requirements.txt"
LAYER_SITE = "python/lib/{python}/site-packages"  # where Chalice's managed layer puts packages
_FROM = re.compile(r"^FROM\s+python:(3\.\d+)", re.MULTILINE | re.IGNORECASE)
_COPY = re.compile(r"^COPY\s+(?!--from)(.+)$", re.MULTILINE | re.IGNORECASE)


def known_stage(stage: str, config_path: Path = CHALICE_CONFIG) -> None:
    check_stage(stage)
    stages = sorted(load(config_path).get("stages", {}))
    if stage not in stages:
        shown = config_path.relative_to(REPO) if config_path.is_relative_to(REPO) else config_path
        raise DeployError(f"stage {stage!r} is not in {shown} (stages: {', '.join(stages) or 'none'}): "
                          f"run scripts/bootstrap {stage} first, or pick one of them")


def worker_python(dockerfile: Path = DOCKERFILE) -> str:
    """python3.X of the worker image's base (FROM python:3.X-...)."""
    match = _FROM.search(dockerfile.read_text(encoding="utf-8"))
    if not match:
        raise DeployError(f"{dockerfile.name} does not start FROM python:3.X: cannot check its requirements")
    return f"python{match.group(1)}"


def worker_context(dest: Path, dockerfile: Path = DOCKERFILE, repo: Path = REPO) -> list[str]:
    """Copy into `dest` what the Dockerfile COPYs from the repository (and the Dockerfile)."""
    sources = [dockerfile.relative_to(repo).as_posix()]
    for line in _COPY.findall(dockerfile.read_text(encoding="utf-8")):
        parts = [p for p in line.split() if not p.startswith("--")]
        sources.extend(parts[:-1])
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc", ".mypy_cache")
    for source in dict.fromkeys(sources):
        src = repo / source.rstrip("/")
        if not src.exists():
            raise DeployError(f"{dockerfile.relative_to(repo)} copies {source}, which does not exist")
        target = dest / source.rstrip("/")
        target.parent.mkdir(parents=True, exist_ok=True)
        if src.is_dir():
            shutil.copytree(src, target, ignore=ignore, dirs_exist_ok=True)
        else:
            shutil.copy2(src, target)
    return sources


def check_layer(layer_zip: Path, requirements: Path, run_time: str) -> None:
    """Every requirement (and theirs) is in the managed layer, for the runtime."""
    with tempfile.TemporaryDirectory(prefix="layer-") as tmp:
        with zipfile.ZipFile(layer_zip) as z:
            z.extractall(tmp)
        site = Path(tmp) / LAYER_SITE.format(python=run_time)
        dependencies.check_site(requirements, site, run_time, f"the layer {layer_zip.name}")


def run_package(stage: str, out: Path) -> None:
    """`chalice package --stage STAGE OUT` with the runtime and the dependencies pinned."""
    env = {**os.environ}
    env.setdefault("AWS_DEFAULT_REGION", env.get("AWS_REGION") or "us-east-1")  # Chalice wants one; not baked in
    done = subprocess.run([sys.executable, "-m", "infra.chalice_cli", "package", "--stage", stage, str(out)],
                          cwd=REPO, env=env, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        lines = [line for line in (done.stderr or done.stdout).splitlines() if line.strip()]
        raise DeployError(f"chalice package failed: {lines[-1].strip() if lines else f'exit {done.returncode}'}")
    if "Could not install dependencies" in done.stdout + done.stderr:  # never with chalice_cli; kept as a guard
        raise DeployError("chalice package could not install every requirement: " + done.stdout.strip()[-300:])


def manifest(root: Path, stage: str, run_time: str) -> dict[str, Any]:
    files = {p.relative_to(root).as_posix(): {"bytes": p.stat().st_size, "sha256": sha256(p)}
             for p in sorted(root.rglob("*")) if p.is_file()}
    return {"stage": stage, "runtime": run_time, "worker_python": worker_python(),
            "worker_build": ["docker", "build", "--platform", "linux/amd64", "--build-arg", f"TOOLS={tools()}",
                             "-f", "worker/" + DOCKERFILE.relative_to(REPO).as_posix(), "worker"],  # from DIR
            "files": files}


def package_only(stage: str, dest: Path, layer_dir: Path | None = layers.DIST,
                 config_path: Path = CHALICE_CONFIG, say: Callable[[str], None] = print) -> dict[str, Any]:
    known_stage(stage, config_path)
    if dest.exists() and (not dest.is_dir() or any(dest.iterdir())):
        raise DeployError(f"{dest} exists and is not an empty folder: give a new or empty one")
    run_time = runtime()
    worker_runtime = worker_python()
    say(f"requirements.txt for {run_time}, workers/requirements.txt for {worker_runtime} (the worker image)")
    dependencies.site_packages(dependencies.REQUIREMENTS, run_time)
    dependencies.site_packages(WORKER_REQUIREMENTS, worker_runtime, provided=())  # the image has no boto3
    dest.parent.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix=f".{dest.name}-", dir=dest.parent))
    try:
        say(f"chalice package --stage {stage} (runtime {run_time})")
        run_package(stage, work / "chalice")
        check_layer(work / "chalice" / "layer-deployment.zip", dependencies.REQUIREMENTS, run_time)
        shutil.copy2(TEMPLATE, work / "stack.yaml")
        zips = sorted(layer_dir.glob("*.zip")) if layer_dir is not None and layer_dir.is_dir() else []
        if zips:
            (work / "layers").mkdir()
            for path in zips:
                shutil.copy2(path, work / "layers" / path.name)
        else:
            say(f"no tool layers in {layer_dir}: none packaged (layers/build makes them)")
        worker_context(work / "worker")
        made = manifest(work, stage, run_time)
        (work / "manifest.json").write_text(json.dumps(made, indent=2) + "\n", encoding="utf-8")
        if dest.exists():
            dest.rmdir()
        work.rename(dest)
    except BaseException:
        shutil.rmtree(work, ignore_errors=True)
        raise
    total = sum(f["bytes"] for f in made["files"].values())
    say(f"{dest}: {len(made['files'])} files, {total / 1e6:.1f} MB, for stage {stage} on {run_time}")
    return made
