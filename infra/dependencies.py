"""The functions' requirements (requirements.txt), installed for the Lambda runtime, checked.

Chalice resolves requirements with the Python that runs it. From the project's Python 3.11
for a python3.12 runtime it asks pip for cp312 wheels without `--python-version`, gets
none for a compiled package (msgspec), prints "Could not install dependencies ... Your
deployment will continue" and ships a layer without it: every function then fails at import.
So the deploy tools install the requirements themselves, for the runtime's Python and
platform, and refuse to go on when one of them (or one of their own requirements) is absent:

    pip install --target DIR --only-binary=:all: --implementation cp --python-version 3.12
                --platform manylinux2014_x86_64 ... -r requirements.txt

The result is cached under ~/.cache/updraft/lambda-deps/<key> (or $UPDRAFT_CACHE_HOME/lambda-deps),
keyed by the requirements' text, the runtime and the platforms: the next package or deploy of
the same requirements reuses it. infra/chalice_cli.py puts this tree into Chalice's layer.
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterable
from dataclasses import dataclass
from email.parser import Parser
from pathlib import Path

from packaging.markers import UndefinedEnvironmentName
from packaging.requirements import InvalidRequirement, Requirement
from packaging.utils import canonicalize_name

from infra.errors import DeployError
from infra.names import REPO

REQUIREMENTS = REPO / "requirements.txt"
# Lambda's python3.12+ runtimes run on Amazon Linux 2023 (glibc 2.34), x86_64 (layers.ARCHITECTURES)
PLATFORMS = ("manylinux2014_x86_64", "manylinux_2_28_x86_64", "manylinux_2_34_x86_64")
PROVIDED = frozenset({"boto3", "botocore"})  # in every Lambda Python runtime (with their own requirements)


class DependencyError(DeployError):
    """A requirement cannot be installed for the runtime, or is absent from a package."""


def python_version(runtime: str) -> str:
    match = re.fullmatch(r"python(3\.\d+)", runtime)
    if not match:
        raise DependencyError(f"runtime {runtime!r} is not a Lambda Python runtime (python3.X)")
    return match.group(1)


def marker_environment(runtime: str) -> dict[str, str]:
    """What a requirement's environment marker sees on the runtime."""
    version = python_version(runtime)
    return {"python_version": version, "python_full_version": f"{version}.0", "implementation_name": "cpython",
            "platform_python_implementation": "CPython", "implementation_version": f"{version}.0",
            "sys_platform": "linux", "os_name": "posix", "platform_system": "Linux", "platform_machine": "x86_64",
            "platform_release": "", "platform_version": "", "extra": ""}


def read_requirements(path: Path) -> list[Requirement]:
    if not path.exists():
        raise DependencyError(f"{path} is missing: it lists what the functions import besides boto3")
    found = []
    for number, raw in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        line = raw.split(" #", 1)[0].strip()
        if not line or line.startswith("#"):
            continue
        if line.startswith("-"):
            raise DependencyError(f"{path}:{number}: pip options ({line.split()[0]}) are not supported here; "
                                  "list one requirement per line")
        try:
            found.append(Requirement(line))
        except InvalidRequirement as exc:
            raise DependencyError(f"{path}:{number}: {line!r} is not a requirement ({exc})") from None
    return found


def cache_home() -> Path:
    """~/.cache/updraft, or UPDRAFT_CACHE_HOME."""
    if os.environ.get("UPDRAFT_CACHE_HOME"):
        return Path(os.environ["UPDRAFT_CACHE_HOME"])
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "updraft"


def cache_key(requirements: Path, runtime: str) -> str:
    digest = hashlib.sha256()
    for part in (requirements.read_bytes(), runtime.encode(), " ".join(PLATFORMS).encode()):
        digest.update(part)
        digest.update(b"\0")
    return digest.hexdigest()[:20]


def pip_command(requirements: Path, target: Path, runtime: str) -> list[str]:
    cmd = [sys.executable, "-m", "pip", "install", "--quiet", "--disable-pip-version-check", "--no-compile",
           "--target", str(target), "--only-binary=:all:", "--implementation", "cp",
           "--python-version", python_version(runtime)]
    for platform in PLATFORMS:
        cmd += ["--platform", platform]
    return [*cmd, "-r", str(requirements)]


_NO_MATCH = re.compile(r"No matching distribution found for (\S+)")


def install(requirements: Path, target: Path, runtime: str) -> None:
    """pip-install `requirements` into `target` for the runtime; DependencyError naming the package."""
    done = subprocess.run(pip_command(requirements, target, runtime), capture_output=True, text=True, check=False)
    if done.returncode == 0:
        return
    match = _NO_MATCH.search(done.stderr + done.stdout)
    if match:
        raise DependencyError(f"{match.group(1)} (from {requirements.name}) has no wheel for {runtime} on "
                              f"{PLATFORMS[0]}: pin a version that publishes one, or drop it")
    last = [line for line in (done.stderr or done.stdout).splitlines() if line.strip() and "is ignored" not in line]
    raise DependencyError(f"pip could not install {requirements.name} for {runtime}: "
                          f"{last[-1].strip() if last else f'exit {done.returncode}'}")


@dataclass(frozen=True)
class Installed:
    name: str
    version: str
    requires: tuple[str, ...]


def installed(site: Path) -> dict[str, Installed]:
    """Distributions in a site-packages folder, by canonical name (from their dist-info)."""
    found: dict[str, Installed] = {}
    for info in site.glob("*.dist-info"):
        meta_path = info / "METADATA"
        if not meta_path.is_file():
            continue
        meta = Parser().parsestr(meta_path.read_text(encoding="utf-8", errors="replace"), headersonly=True)
        name = meta.get("Name")
        if name:
            found[canonicalize_name(name)] = Installed(name, meta.get("Version", "?"),
                                                       tuple(meta.get_all("Requires-Dist") or ()))
    return found


def _applies(req: Requirement, env: dict[str, str], extras: Iterable[str]) -> bool:
    if req.marker is None:
        return True
    try:
        return any(req.marker.evaluate({**env, "extra": extra}) for extra in ("", *extras))
    except UndefinedEnvironmentName:
        return True


def missing(requirements: Iterable[Requirement], site: Path, runtime: str,
            provided: Iterable[str] = PROVIDED) -> list[str]:
    """Requirements (and their own requirements, extras included) absent from `site` or of a
    version the specifier refuses; what the runtime provides counts as present."""
    env = marker_environment(runtime)
    dists = installed(site)
    given = {canonicalize_name(p) for p in provided}
    problems: list[str] = []
    seen: set[tuple[str, frozenset[str]]] = set()
    todo = [(req, "requirements.txt") for req in requirements if _applies(req, env, ())]
    while todo:
        req, why = todo.pop()
        key = canonicalize_name(req.name)
        if (key, frozenset(req.extras)) in seen or key in given:
            continue
        seen.add((key, frozenset(req.extras)))
        dist = dists.get(key)
        if dist is None:
            problems.append(f"{req.name} (required by {why})")
            continue
        if req.specifier and not req.specifier.contains(dist.version, prereleases=True):
            problems.append(f"{req.name} {dist.version} does not satisfy {req} (required by {why})")
        for line in dist.requires:
            sub = Requirement(line)
            if _applies(sub, env, req.extras):
                todo.append((sub, dist.name))
    return sorted(set(problems))


def check_site(requirements: Path, site: Path, runtime: str, what: str,
               provided: Iterable[str] = PROVIDED) -> None:
    absent = missing(read_requirements(requirements), site, runtime, provided)
    if absent:
        raise DependencyError(f"{what} lacks {absent[0]}" + (f" and {len(absent) - 1} more" if len(absent) > 1 else "")
                              + f" for {runtime}: the functions would fail at import")


def site_packages(requirements: Path = REQUIREMENTS, runtime: str = "python3.12",
                  provided: Iterable[str] = PROVIDED) -> Path:
    """The requirements installed for the runtime and checked; cached by their hash.
    `provided`: what the runtime has without them (Lambda: boto3, botocore)."""
    read_requirements(requirements)  # a malformed line is named before pip runs
    cache = cache_home() / "lambda-deps" / f"{runtime}-{cache_key(requirements, runtime)}"
    if cache.is_dir():
        check_site(requirements, cache, runtime, f"cached {cache}", provided)
        return cache
    cache.parent.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix=".build-", dir=cache.parent))
    try:
        install(requirements, work, runtime)
        check_site(requirements, work, runtime, f"what pip installed from {requirements.name}", provided)
        work.rename(cache)
    except BaseException:
        shutil.rmtree(work, ignore_errors=True)
        raise
    return cache
