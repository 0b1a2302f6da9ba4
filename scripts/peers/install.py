"""Put the peers where the benchmark can run them without touching the project's environment:
Dask distributed, Parsl, Snakemake (plus matplotlib, py-spy, pyinstrument for the chart and the
profile) in a virtual environment under the cache folder; Makeflow from Debian's
coop-computing-tools (which needs openmpi-bin). What cannot be had is reported, never faked.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tomllib
from dataclasses import dataclass
from pathlib import Path

PIP_PACKAGES = ("dask[distributed]", "parsl", "snakemake", "matplotlib", "py-spy", "pyinstrument")
DEBIAN_PACKAGES = ("coop-computing-tools", "openmpi-bin")
VERSIONS = ("dask", "distributed", "parsl", "snakemake", "matplotlib")


def log(msg: str) -> None:
    print(f"{os.path.basename(sys.argv[0])}: {msg}", file=sys.stderr, flush=True)


def venv(path: Path) -> list[str]:
    """Create or complete the venv; returns the problems (empty when all is there)."""
    python = path / "bin" / "python"
    if not python.exists():
        log(f"creating {path}")
        subprocess.run([sys.executable, "-m", "venv", str(path)], check=True)
    missing = [p for p in PIP_PACKAGES if not _has_dist(python, p.split("[")[0])]
    if not missing:
        return []
    log(f"installing {', '.join(missing)} into {path}")
    proc = subprocess.run([str(python), "-m", "pip", "install", "-q", *missing], capture_output=True, text=True,
                          check=False)
    if proc.returncode != 0:
        return [f"pip install {' '.join(missing)} failed: {proc.stderr.strip()[-400:]}"]
    return []


@dataclass(frozen=True)
class UpdraftInstall:
    """How the benchmarks start Updraft: the command before `run ...`, the environment to add,
    and what that is, in words for the report."""

    prefix: list[str]
    env: dict[str, str]
    how: str


UPDRAFT_MODES = ("venv", "checkout")


def for_benchmark(mode: str, cache: Path, repo: Path) -> tuple[UpdraftInstall, list[str]]:
    """The benchmark scripts' `--updraft MODE` (one of UPDRAFT_MODES): Updraft in its own venv
    under `cache` (see `updraft`), or the checkout; and the problems met installing it."""
    return updraft(cache / "updraft-venv", repo) if mode == "venv" else (checkout(repo), [])


def checkout(repo: Path) -> UpdraftInstall:
    """Updraft from the checkout, on the interpreter running the benchmark (PYTHONPATH)."""
    return UpdraftInstall([sys.executable, "-m", "chalicelib.cli"], {"PYTHONPATH": str(repo)},
                          f"the checkout on {sys.executable} (PYTHONPATH)")


def updraft(path: Path, repo: Path) -> tuple[UpdraftInstall, list[str]]:
    """Updraft installed the way a user installs it, into a virtual environment of its own, as
    the peers are: `pip install <checkout>` (a wheel, not editable), refreshed on every call so
    it is the checkout's code. The peers' venv is not used, so that no peer's packages and no
    .pth file of theirs are in Updraft's start-up, and none of the interpreter running the
    benchmark are either (site-packages' .pth files run at every Python start: on the
    benchmark machine an editable install's import hook and a certificate hook cost about 50
    ms there). Where the install fails the checkout runs instead, and the problem is
    reported."""
    python = path / "bin" / "python"
    if not python.exists() or not _has_dist(python, "msgspec"):
        log(f"creating {path} and installing Updraft with its dependencies")
        steps = [[sys.executable, "-m", "venv", "--clear", str(path)],
                 [str(python), "-m", "pip", "install", "-q", "setuptools>=68", str(repo)]]
    else:  # the checkout's code again, built with the venv's setuptools (no isolated build environment)
        steps = [[str(python), "-m", "pip", "install", "-q", "--no-deps", "--force-reinstall",
                  "--no-build-isolation", str(repo)]]
    for step in steps:
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            proc = subprocess.run(step, capture_output=True, text=True, check=False, cwd=path.parent)
            failed = proc.stderr.strip()[-400:] if proc.returncode else None
        except OSError as exc:
            failed = str(exc)
        if failed is not None:
            return checkout(repo), [f"{' '.join(step[:5])} ... failed: {failed}; Updraft ran from the checkout"]
    return UpdraftInstall([str(path / "bin" / "updraft")], {}, f"`pip install` of the checkout into {path}"), []


def _has_dist(python: Path, name: str) -> bool:
    probe = subprocess.run([str(python), "-c", f"import importlib.metadata as m; m.version({name!r})"],
                           capture_output=True, check=False)
    return probe.returncode == 0


def debian() -> list[str]:
    """Install Makeflow from Debian when missing; returns the problems."""
    if shutil.which("makeflow"):
        return []
    if os.geteuid() != 0:
        return [f"makeflow missing and not root: run `apt-get install -y {' '.join(DEBIAN_PACKAGES)}`"]
    if not shutil.which("apt-get"):
        return ["makeflow missing and no apt-get on this machine"]
    log("apt-get update")
    subprocess.run(["apt-get", "update", "-q"], capture_output=True, check=False)
    for pkg in DEBIAN_PACKAGES:
        policy = subprocess.run(["apt-cache", "policy", pkg], capture_output=True, text=True, check=False).stdout
        if "Candidate:" not in policy or "Candidate: (none)" in policy:
            return [f"Debian package {pkg} is not available here"]
    log(f"apt-get install {' '.join(DEBIAN_PACKAGES)}")
    proc = subprocess.run(["apt-get", "install", "-y", "-q", *DEBIAN_PACKAGES], capture_output=True, text=True,
                          check=False, env={**os.environ, "DEBIAN_FRONTEND": "noninteractive"})
    if proc.returncode != 0:
        return [f"apt-get install failed: {proc.stderr.strip()[-400:]}"]
    return []


def versions(venv_path: Path, repo: Path, ours: UpdraftInstall | None = None) -> dict[str, str]:
    """Each engine's version as its own packaging reports it."""
    out: dict[str, str] = {}
    python = venv_path / "bin" / "python"
    if python.exists():
        probe = subprocess.run([str(python), "-c", (
            "import importlib.metadata as m, json\n"
            f"names = {list(VERSIONS)!r}\n"
            "out = {}\n"
            "for n in names:\n"
            "    try: out[n] = m.version(n)\n"
            "    except m.PackageNotFoundError: pass\n"
            "print(json.dumps(out))")], capture_output=True, text=True, check=False)
        found = json.loads(probe.stdout or "{}")
        if "parsl" in found:
            out["parsl"] = f"Parsl {found['parsl']}"
        if "snakemake" in found:
            out["snakemake"] = f"Snakemake {found['snakemake']}"
        if "dask" in found:
            out["dask-threads"] = f"Dask {found['dask']}"
        if "distributed" in found:
            out["dask-distributed"] = f"Dask {found.get('dask', '?')}, distributed {found['distributed']}"
    deb = subprocess.run(["dpkg-query", "-W", "-f", "${Version}", "coop-computing-tools"], capture_output=True,
                         text=True, check=False)
    if deb.returncode == 0 and deb.stdout:
        mf = subprocess.run(["makeflow", "-v"], capture_output=True, text=True, check=False).stdout.splitlines()
        said = mf[0].strip() if mf else ""
        out["makeflow"] = f"Debian coop-computing-tools {deb.stdout}" + (f" (`makeflow -v`: {said})" if said else "")
    head = subprocess.run(["git", "-C", str(repo), "rev-parse", "--short", "HEAD"], capture_output=True, text=True,
                          check=False).stdout.strip()
    with open(repo / "pyproject.toml", "rb") as fh:
        version = tomllib.load(fh)["project"]["version"]
    out["updraft"] = f"Updraft {version}" + (f", main at {head}" if head else "") + (f", {ours.how}" if ours else "")
    xargs = subprocess.run(["xargs", "--version"], capture_output=True, text=True, check=False).stdout.splitlines()
    out["floor"] = xargs[0] if xargs else "xargs"
    return out
