"""scripts/deploy STAGE --package-only DIR: what a deploy uploads, written and checked
(infra/package.py); and the deploy's own check before it uploads anything."""

from __future__ import annotations

import json
import zipfile
from pathlib import Path

import pytest

from infra import deploy, package
from infra.dependencies import DependencyError
from infra.errors import DeployError
from infra.layers import sha256
from infra.names import REPO


@pytest.fixture(scope="module")
def artifact(tmp_path_factory: pytest.TempPathFactory) -> Path:
    dest = tmp_path_factory.mktemp("pkg") / "dev"
    assert deploy.main(["dev", "--package-only", str(dest), "--no-layers"]) == 0
    return dest


def test_the_artifact_holds_what_a_deploy_uploads(artifact: Path) -> None:
    made = json.loads((artifact / "manifest.json").read_text())
    assert made["stage"] == "dev" and made["runtime"] == "python3.12"
    files = set(made["files"])
    assert {"chalice/deployment.zip", "chalice/layer-deployment.zip", "chalice/sam.json", "stack.yaml",
            "worker/workers/Dockerfile", "worker/workers/requirements.txt", "worker/workers/worker.py",
            "worker/chalicelib/backends/aws/observability.py"} <= files
    for name, entry in made["files"].items():
        assert sha256(artifact / name) == entry["sha256"], name
    assert (artifact / "stack.yaml").read_bytes() == (REPO / "infra" / "stack.yaml").read_bytes()
    template = json.loads((artifact / "chalice" / "sam.json").read_text())
    runtimes = {r["Properties"].get("Runtime") for r in template["Resources"].values()
                if r["Type"] == "AWS::Serverless::Function"}
    assert runtimes == {"python3.12"}
    with zipfile.ZipFile(artifact / "chalice" / "deployment.zip") as z:
        names = z.namelist()
    assert "app.py" in names and not [n for n in names if "__pycache__" in n]


def test_the_layer_carries_msgspec_built_for_python312(artifact: Path) -> None:
    """B2: Chalice alone, from Python 3.11, left msgspec out of this layer."""
    with zipfile.ZipFile(artifact / "chalice" / "layer-deployment.zip") as z:
        names = z.namelist()
    assert "python/lib/python3.12/site-packages/msgspec/_core.cpython-312-x86_64-linux-gnu.so" in names
    assert not [n for n in names if "aws_xray_sdk" in n]  # B1: tracing does not need it


def test_a_layer_missing_a_requirement_is_refused(artifact: Path, tmp_path: Path) -> None:
    src, dest = artifact / "chalice" / "layer-deployment.zip", tmp_path / "layer.zip"
    with zipfile.ZipFile(src) as zin, zipfile.ZipFile(dest, "w") as zout:
        for item in zin.infolist():
            if "/msgspec" not in item.filename:
                zout.writestr(item, zin.read(item))
    with pytest.raises(DependencyError, match=r"lacks msgspec \(required by requirements\.txt\)"):
        package.check_layer(dest, REPO / "requirements.txt", "python3.12")


def test_bad_input_gets_one_line_and_a_non_zero_exit(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert deploy.main(["nope", "--package-only", str(tmp_path / "a")]) == 1
    (tmp_path / "full").mkdir()
    (tmp_path / "full" / "x").write_text("x")
    assert deploy.main(["dev", "--package-only", str(tmp_path / "full")]) == 1
    err = capsys.readouterr().err.splitlines()
    assert err == ["deploy: stage 'nope' is not in .chalice/config.json (stages: dev, prod): run scripts/bootstrap "
                   "nope first, or pick one of them",
                   f"deploy: {tmp_path / 'full'} exists and is not an empty folder: give a new or empty one"]
    assert not (tmp_path / "a").exists()


def test_deploy_checks_the_requirements_before_touching_aws(monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(*args: object, **kwargs: object) -> Path:
        raise DependencyError("msgspec>=0.21 (from requirements.txt) has no wheel for python3.12")

    class NoAws:
        def __getattr__(self, name: str) -> object:
            raise AssertionError(f"AWS was used ({name}) before the requirements were checked")

    monkeypatch.setattr(deploy.dependencies, "site_packages", refuse)
    with pytest.raises(DeployError, match="msgspec"):
        deploy.deploy("dev", NoAws(), {})


def test_push_worker_without_docker_stops_before_touching_aws() -> None:
    """This machine has no Docker daemon (and maybe no docker): either way, one line, no AWS."""

    class NoAws:
        def __getattr__(self, name: str) -> object:
            raise AssertionError(f"AWS was used ({name}) before docker was checked")

    with pytest.raises(DeployError, match=r"^--push-worker needs (docker on PATH|a running Docker daemon)"):
        deploy.deploy("dev", NoAws(), {}, push_worker=True)


def test_the_worker_context_is_what_the_dockerfile_copies(tmp_path: Path) -> None:
    copied = package.worker_context(tmp_path)
    assert copied[0] == "workers/Dockerfile" and "chalicelib/" in copied and "workers/requirements.txt" in copied
    assert not list(tmp_path.rglob("__pycache__"))
    assert package.worker_python() == "python3.11"
