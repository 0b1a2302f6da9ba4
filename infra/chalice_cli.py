"""Run the Chalice CLI with the Lambda runtime pinned.

Chalice picks the functions' runtime from the Python that runs it (3.11 here gives
python3.11), with no setting to change it. Lambda blocked creating python3.11 functions on
2026-07-31 and updating them on 2026-08-31 (AWS Lambda runtimes page, read 2026-11-01), so a
deploy from the project's Python 3.11 would fail. This wrapper runs the same CLI with the
runtime set to LAMBDA_RUNTIME (override: UPDRAFT_LAMBDA_RUNTIME):

    python -m infra.chalice_cli deploy --stage dev
    python -m infra.chalice_cli package --stage dev out/

python3.12 is the supported runtime closest to the 3.11 the project is tested on (no module
the code uses was removed in 3.12); it is supported until 2028-10-31.

It also replaces how Chalice installs requirements.txt (its managed layer, or the package):
Chalice asks pip for the runtime's wheels without `--python-version`, so from Python 3.11 a
compiled requirement (msgspec) is "not installed" and the deploy "continues" without it.
Here infra/dependencies.py installs them for the pinned runtime and checks every one is
present; a missing one stops `chalice deploy`/`package` with one line naming it.
"""

from __future__ import annotations

import os
import shutil
import sys
from pathlib import Path
from typing import Any

from infra import dependencies

LAMBDA_RUNTIME = "python3.12"
RUNTIME_ENV = "UPDRAFT_LAMBDA_RUNTIME"
SUPPORTED = ("python3.12", "python3.13", "python3.14")


def runtime() -> str:
    chosen = os.environ.get(RUNTIME_ENV) or LAMBDA_RUNTIME
    if chosen not in SUPPORTED:
        raise SystemExit(f"chalice_cli: {RUNTIME_ENV}={chosen!r} is not one of {', '.join(SUPPORTED)}")
    return chosen


def pin_runtime(name: str) -> None:
    from chalice.config import Config

    if not isinstance(getattr(Config, "lambda_python_version", None), property):
        raise SystemExit("chalice_cli: this Chalice has no Config.lambda_python_version; update infra/chalice_cli.py")
    Config.lambda_python_version = property(lambda self: name)  # type: ignore[method-assign,assignment]


BUILD_TAG = "-updraft-deps1"  # in the names of the zips built here: never reuse one Chalice built itself


def pin_dependencies(name: str) -> None:
    """Chalice's requirements.txt install -> infra/dependencies.site_packages for `name`."""
    from chalice.deploy import packager

    def build_site_packages(self: Any, abi: str, requirements_filepath: str, target_directory: str) -> None:
        requirements = Path(requirements_filepath)
        if not dependencies.read_requirements(requirements):
            return
        site = dependencies.site_packages(requirements, name)
        shutil.copytree(site, target_directory, dirs_exist_ok=True,
                        ignore=shutil.ignore_patterns("__pycache__", "bin"))

    packager.DependencyBuilder.build_site_packages = build_site_packages  # type: ignore[method-assign]
    for cls in (packager.LambdaDeploymentPackager, packager.LayerDeploymentPackager):
        original = cls.deployment_package_filename

        def tagged(self: Any, project_dir: str, python_version: str, _original: Any = original) -> str:
            filename = str(_original(self, project_dir, python_version))
            return filename[:-len(".zip")] + BUILD_TAG + ".zip" if filename.endswith(".zip") else filename

        cls.deployment_package_filename = tagged  # type: ignore[method-assign]


def skip_bytecode() -> None:
    """Leave the developer's bytecode out of the functions' zip: Chalice zips every file under
    chalicelib/, `__pycache__` included (a test run writes it, and a moved module leaves a
    stale .pyc behind that Lambda would import instead of failing)."""
    from chalice.deploy import packager

    base = packager.BaseLambdaDeploymentPackager
    original = base._iter_chalice_lib_if_needed

    def sources_only(self: Any, project_dir: str) -> Any:
        for full_path, zip_path in original(self, project_dir):
            if "__pycache__" not in Path(zip_path).parts and not zip_path.endswith(".pyc"):
                yield full_path, zip_path

    base._iter_chalice_lib_if_needed = sources_only  # type: ignore[method-assign]


def main(argv: list[str] | None = None) -> int:
    chosen = runtime()
    pin_runtime(chosen)
    pin_dependencies(chosen)
    skip_bytecode()
    from chalice.cli import main as chalice_main

    sys.argv = ["chalice", *(sys.argv[1:] if argv is None else argv)]
    try:
        return int(chalice_main() or 0)
    except dependencies.DependencyError as exc:
        print(f"chalice_cli: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    raise SystemExit(main())
