"""infra/dependencies.py: requirements installed for the Lambda runtime, and the check that
refuses a package (or layer) missing one of them, or one of theirs (issue 21, B2)."""

from __future__ import annotations

from pathlib import Path

import pytest

from infra import dependencies, preflight
from infra.dependencies import DependencyError, missing, read_requirements


def dist(site: Path, name: str, version: str, *requires: str) -> None:
    info = site / f"{name.replace('-', '_')}-{version}.dist-info"
    info.mkdir(parents=True)
    lines = ["Metadata-Version: 2.1", f"Name: {name}", f"Version: {version}",
             *(f"Requires-Dist: {r}" for r in requires)]
    (info / "METADATA").write_text("\n".join(lines) + "\n")


@pytest.fixture
def site(tmp_path: Path) -> Path:
    site = tmp_path / "site"
    dist(site, "aws-lambda-powertools", "3.37.0", "jmespath<2,>=1.0.1", "typing-extensions>=4.11",
         'aws-xray-sdk>=2.8; extra == "tracer"', 'boto3<2,>=1.34; extra == "aws-sdk"')
    dist(site, "jmespath", "1.1.0")
    dist(site, "typing-extensions", "4.16.0")
    dist(site, "msgspec", "0.23.0", 'pyyaml; extra == "yaml"', 'tomli; python_version < "3.11"')
    return site


def reqs(tmp_path: Path, text: str) -> list:  # type: ignore[type-arg]
    path = tmp_path / "requirements.txt"
    path.write_text(text)
    return read_requirements(path)


def test_a_complete_layer_passes(tmp_path: Path, site: Path) -> None:
    assert missing(reqs(tmp_path, "# x\naws-lambda-powertools>=2.30\nmsgspec>=0.21\n"), site, "python3.12") == []


def test_a_missing_requirement_is_named(tmp_path: Path, site: Path) -> None:
    assert missing(reqs(tmp_path, "msgspec>=0.21\nrequests\n"), site, "python3.12") == [
        "requests (required by requirements.txt)"]


def test_an_extra_brings_its_own_requirements(tmp_path: Path, site: Path) -> None:
    """aws-lambda-powertools[tracer] needs aws-xray-sdk: the layer without it is refused."""
    assert missing(reqs(tmp_path, "aws-lambda-powertools[tracer]>=2.30\n"), site, "python3.12") == [
        "aws-xray-sdk (required by aws-lambda-powertools)"]


def test_markers_are_those_of_the_runtime(tmp_path: Path, site: Path) -> None:
    assert missing(reqs(tmp_path, 'msgspec\nexceptiongroup; python_version < "3.11"\n'), site, "python3.12") == []
    assert missing(reqs(tmp_path, 'msgspec\nexceptiongroup; python_version < "3.11"\n'), site, "python3.10") == [
        "exceptiongroup (required by requirements.txt)", "tomli (required by msgspec)"]


def test_a_version_the_specifier_refuses_is_named(tmp_path: Path, site: Path) -> None:
    assert missing(reqs(tmp_path, "msgspec>=0.30\n"), site, "python3.12") == [
        "msgspec 0.23.0 does not satisfy msgspec>=0.30 (required by requirements.txt)"]


def test_what_the_runtime_provides_counts_as_present(tmp_path: Path, site: Path) -> None:
    assert missing(reqs(tmp_path, "boto3>=1.34\n"), site, "python3.12") == []
    assert missing(reqs(tmp_path, "boto3>=1.34\n"), site, "python3.12", provided=()) == [
        "boto3 (required by requirements.txt)"]


def test_check_site_says_what_lacks_what(tmp_path: Path, site: Path) -> None:
    (tmp_path / "requirements.txt").write_text("msgspec\nrequests\nurllib3\n")
    with pytest.raises(DependencyError, match=r"^the layer x\.zip lacks requests \(required by requirements\.txt\) "
                                              r"and 1 more for python3\.12"):
        dependencies.check_site(tmp_path / "requirements.txt", site, "python3.12", "the layer x.zip")


@pytest.mark.parametrize(("text", "message"), [
    ("-r other.txt\n", "pip options"), ("msgspec >= = 1\n", "is not a requirement")])
def test_requirement_files_the_check_cannot_read_are_refused(tmp_path: Path, text: str, message: str) -> None:
    with pytest.raises(DependencyError, match=message):
        reqs(tmp_path, text)


def test_pip_installs_for_the_runtimes_python_and_platform(tmp_path: Path) -> None:
    cmd = dependencies.pip_command(tmp_path / "requirements.txt", tmp_path / "t", "python3.12")
    assert cmd[cmd.index("--python-version") + 1] == "3.12"  # what Chalice left out (B2)
    assert "--only-binary=:all:" in cmd and "manylinux2014_x86_64" in cmd


def test_the_projects_requirements_install_for_the_pinned_runtime() -> None:
    """Real pip (cached by the requirements' hash under ~/.cache/updraft): msgspec for cp312."""
    site = dependencies.site_packages(dependencies.REQUIREMENTS, "python3.12")
    names = set(dependencies.installed(site))
    assert {"msgspec", "aws-lambda-powertools"} <= names
    assert list(site.glob("msgspec/_core.cpython-312-x86_64-linux-gnu.so"))


def test_a_requirement_without_a_wheel_for_the_runtime_is_named(tmp_path: Path,
                                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("UPDRAFT_CACHE_HOME", str(tmp_path / "cache"))
    (tmp_path / "requirements.txt").write_text("msgspec==0.18.0\n")  # published as an sdist only
    with pytest.raises(DependencyError, match=r"^msgspec==0\.18\.0 \(from requirements\.txt\) has no wheel for "
                                              r"python3\.12"):
        dependencies.site_packages(tmp_path / "requirements.txt", "python3.12")
    assert not list((tmp_path / "cache" / "lambda-deps").iterdir())  # nothing half-written is cached


def test_deploy_needs_a_running_docker_only_to_push_the_worker() -> None:
    preflight.check_tools(push_worker=False, which=lambda name: None)
    with pytest.raises(preflight.DeployError, match="needs docker on PATH"):
        preflight.check_tools(push_worker=True, which=lambda name: None)

    class Failed:
        returncode = 1

    with pytest.raises(preflight.DeployError, match="running Docker daemon"):
        preflight.check_tools(push_worker=True, which=lambda name: "/usr/bin/docker", run=lambda *a, **k: Failed())
