"""Checks scripts/deploy makes before touching AWS: what would break only once deployed.

`chalice deploy` ships app.py, chalicelib/ and the packages of requirements.txt; anything
else the functions import fails at their first invocation, far from the deploy that caused
it. So every third-party module imported by that code must be in requirements.txt.
"""

from __future__ import annotations

import ast
import shutil
import subprocess
import sys
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

from infra.errors import DeployError
from infra.names import REPO

PROVIDED = {"boto3", "botocore", "chalice"}  # in the Lambda runtime, or bundled by Chalice
LOCAL = {"chalicelib", "app"}
NOT_IN_FUNCTIONS = {  # imported only by code the functions never run
    "matplotlib": "charts of `updraft report` (the CLI)",
    "updraft": "the SDK, used by the CLI",
    "cwl_utils": "CWL documents are read where a run is planned (the CLI, updraft-cwl-runner); "
                 "the functions refuse CWL text with a clear problem, and its tasks' launcher needs "
                 "only the standard library",
    "yaml": "CWL job files (the CLI, updraft-cwl-runner)",
    "rich": "the terminal display of `updraft run`/`watch` (chalicelib/ui/display.py, imported lazily by the CLI)",
}
DISTRIBUTION = {"aws_lambda_powertools": "aws-lambda-powertools"}  # module -> name on the package index


def third_party_imports(files: Iterable[Path]) -> set[str]:
    found: set[str] = set()
    for path in files:
        tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                found.update(alias.name.split(".")[0] for alias in node.names)
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                found.add(node.module.split(".")[0])
    return {m for m in found if m not in sys.stdlib_module_names and m not in PROVIDED | LOCAL}


def requirement_names(path: Path) -> set[str]:
    if not path.exists():
        return set()
    names = set()
    for line in path.read_text(encoding="utf-8").splitlines():
        line = line.split("#", 1)[0].strip()
        if line:
            name = line.split(";")[0]
            for sep in "<>=!~[ ":
                name = name.split(sep)[0]
            names.add(name.lower().replace("_", "-"))
    return names


def missing_requirements(repo: Path = REPO) -> list[str]:
    """Distributions the functions import that requirements.txt does not list."""
    code = [repo / "app.py", *sorted((repo / "chalicelib").rglob("*.py"))]
    listed = requirement_names(repo / "requirements.txt")
    needed = third_party_imports(code) - set(NOT_IN_FUNCTIONS)
    wanted = {DISTRIBUTION.get(m, m).lower().replace("_", "-") for m in needed}
    return sorted(wanted - listed)


def check(repo: Path = REPO) -> None:
    missing = missing_requirements(repo)
    if missing:
        raise DeployError(f"the functions import {', '.join(missing)}, which requirements.txt does not list: "
                          "add them, or the deployed functions fail at their first invocation")


def check_tools(push_worker: bool = False, which: Callable[[str], str | None] = shutil.which,
                run: Callable[..., Any] = subprocess.run) -> None:
    """The programs the deploy runs exist, before anything is uploaded."""
    try:
        import chalice  # noqa: F401
    except ImportError:
        raise DeployError("chalice is not installed in this Python: pip install -e . (from the repository)") from None
    if not push_worker:
        return
    if which("docker") is None:
        raise DeployError("--push-worker needs docker on PATH (or pass --worker-image with an image you built)")
    info = run(["docker", "info", "--format", "{{.ServerVersion}}"], capture_output=True, text=True, check=False)
    if info.returncode != 0:
        raise DeployError("--push-worker needs a running Docker daemon (`docker info` failed): start it, "
                          "or pass --worker-image with an image you built")
