"""What the artifact tests run on: the deploy artifact unpacked, a bare Python 3.12 with only
boto3 (Lambda's python3.12 runtime), a clean virtual environment for the worker, and one
long-lived process per function (tests/artifact/lambda_bootstrap.py).

The slow parts are cached under ~/.cache/updraft (UPDRAFT_CACHE_HOME), keyed by what they
are built from: the boto3-only runtime folder by its pins, the worker's virtual environment
by workers/requirements.txt. The requirements of the functions are cached by
infra/dependencies.py the same way.
"""

from __future__ import annotations

import hashlib
import json
import os
import select
import shutil
import subprocess
import sys
import tempfile
import time
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from infra.dependencies import cache_home

REPO = Path(__file__).resolve().parents[2]
BOOTSTRAP = Path(__file__).with_name("lambda_bootstrap.py")
# Lambda's python3.12 runtime: the standard library, boto3 and botocore (and their requirements)
RUNTIME_PACKAGES = ("boto3", "botocore")
STAGE = "dev"


class Unavailable(Exception):
    """Something the test needs is not on this machine (the test is skipped with the reason)."""


def pyenv_python(version: str) -> Path:
    """$(pyenv root)/versions/<version>.*/bin/python<version>, newest patch first."""
    root = os.environ.get("PYENV_ROOT") or str(Path.home() / ".pyenv")
    if shutil.which("pyenv"):
        done = subprocess.run(["pyenv", "root"], capture_output=True, text=True, check=False)
        root = done.stdout.strip() or root
    found = sorted(Path(root, "versions").glob(f"{version}.*/bin/python{version}"),
                   key=lambda p: [int(x) if x.isdigit() else 0 for x in p.parts[-3].split(".")])
    if not found:
        raise Unavailable(f"no Python {version} under {root}/versions (pyenv install {version})")
    return found[-1]


def _key(*parts: str | bytes) -> str:
    digest = hashlib.sha256()
    for part in parts:
        digest.update(part if isinstance(part, bytes) else part.encode())
        digest.update(b"\0")
    return digest.hexdigest()[:16]


def _pip(*args: str) -> None:
    done = subprocess.run([sys.executable, "-m", "pip", "--disable-pip-version-check", *args],
                          capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise AssertionError(f"pip {' '.join(args)} failed:\n{done.stderr[-2000:]}")


def _cached(kind: str, key: str, build: Any) -> Path:
    """cache_home()/kind/key, made by build(tmp) when absent (atomically)."""
    dest = cache_home() / kind / key
    if dest.is_dir():
        return dest
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=".build-", dir=dest.parent))
    try:
        build(tmp)
        tmp.rename(dest)
    except OSError:
        shutil.rmtree(tmp, ignore_errors=True)
        if not dest.is_dir():  # another session made it first otherwise
            raise
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return dest


def lambda_runtime_dir() -> Path:
    """boto3 and botocore (with their requirements) for Python 3.12: Lambda's runtime folder.
    The versions are the ones this project is tested with."""
    from importlib.metadata import version

    pins = [f"{name}=={version(name)}" for name in RUNTIME_PACKAGES]

    def build(tmp: Path) -> None:
        _pip("install", "--quiet", "--no-compile", "--target", str(tmp), "--only-binary=:all:",
             "--implementation", "cp", "--python-version", "3.12", "--platform", "manylinux2014_x86_64", *pins)

    return _cached("lambda-runtime", _key(*pins), build)


def worker_venv() -> Path:
    """A virtual environment of the worker image's Python made only from workers/requirements.txt."""
    requirements = REPO / "workers" / "requirements.txt"
    python = pyenv_python("3.11")

    def build(tmp: Path) -> None:
        subprocess.run([str(python), "-m", "venv", str(tmp)], check=True, capture_output=True)
        done = subprocess.run([str(tmp / "bin" / "python"), "-m", "pip", "install", "--quiet",
                               "--disable-pip-version-check", "-r", str(requirements)],
                              capture_output=True, text=True, check=False)
        if done.returncode != 0:
            raise AssertionError(f"the worker's requirements do not install:\n{done.stderr[-2000:]}")

    return _cached("worker-venv", _key(requirements.read_bytes(), str(python)), build)


def build_artifact(dest: Path) -> float:
    """`scripts/deploy dev --package-only dest`; returns the seconds it took."""
    started = time.perf_counter()
    done = subprocess.run([str(REPO / "scripts" / "deploy"), STAGE, "--package-only", str(dest)], cwd=REPO,
                          env={**os.environ, "UPDRAFT_PYTHON": sys.executable}, capture_output=True, text=True,
                          check=False)
    if done.returncode != 0:
        raise AssertionError(f"scripts/deploy --package-only failed:\n{done.stdout}{done.stderr}")
    return time.perf_counter() - started


def tree_state(root: Path) -> dict[str, tuple[int, int]]:
    return {p.relative_to(root).as_posix(): (p.stat().st_size, p.stat().st_mtime_ns)
            for p in sorted(root.rglob("*"))}


def read_only(root: Path) -> None:
    for path in [root, *root.rglob("*")]:
        if not path.is_symlink():
            path.chmod(path.stat().st_mode & ~0o222)


@dataclass
class Unpacked:
    """The artifact as Lambda lays it out: the package in task/ (/var/task), layers in opt/ (/opt)."""

    root: Path
    task_root: Path
    opt: Path
    functions: dict[str, dict[str, Any]]  # logical id -> Properties of the SAM function

    @classmethod
    def of(cls, artifact: Path, dest: Path) -> Unpacked:
        task_root, opt = dest / "task", dest / "opt"
        with zipfile.ZipFile(artifact / "chalice" / "deployment.zip") as z:
            z.extractall(task_root)
        with zipfile.ZipFile(artifact / "chalice" / "layer-deployment.zip") as z:
            z.extractall(opt)
        for layer in sorted((artifact / "layers").glob("*.zip")) if (artifact / "layers").is_dir() else []:
            with zipfile.ZipFile(layer) as z:
                z.extractall(opt)
        template = json.loads((artifact / "chalice" / "sam.json").read_text())
        functions = {k: v["Properties"] for k, v in template["Resources"].items()
                     if v["Type"] == "AWS::Serverless::Function"}
        read_only(dest)
        return cls(dest, task_root, opt, functions)


class FunctionError(Exception):
    def __init__(self, error: dict[str, Any]) -> None:
        super().__init__(f"{error.get('errorType')}: {error.get('errorMessage')}")
        self.error = error


class FunctionProcess:
    """One function of the artifact in its own `python3.12 -I -S` process (a warm sandbox)."""

    def __init__(self, logical_id: str, unpacked: Unpacked, runtime_dir: Path, python: Path,
                 env: dict[str, str], workdir: Path) -> None:
        props = unpacked.functions[logical_id]
        self.logical_id = logical_id
        # Chalice's names: the API handler is <app>-<stage>, the others <app>-<stage>-<name>
        # (the task function of another memory size, Task<mb>, is task-<mb>)
        short = f"task-{logical_id[4:]}" if logical_id.startswith("Task") and logical_id[4:].isdigit() \
            else logical_id.lower()
        self.name = f"updraft-{STAGE}" if logical_id == "APIHandler" else f"updraft-{STAGE}-{short}"
        self.memory_mb = int(props["MemorySize"])
        self.timeout_s = float(props["Timeout"])
        tmp = workdir / f"tmp-{logical_id}"
        tmp.mkdir(parents=True, exist_ok=True)
        self.env = {
            # what Lambda sets for every function
            "AWS_LAMBDA_FUNCTION_NAME": self.name, "AWS_LAMBDA_FUNCTION_VERSION": "$LATEST",
            "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": str(self.memory_mb), "_HANDLER": props["Handler"],
            "AWS_LAMBDA_LOG_GROUP_NAME": f"/aws/lambda/{self.name}", "AWS_LAMBDA_LOG_STREAM_NAME": "local",
            "AWS_EXECUTION_ENV": f"AWS_Lambda_{props['Runtime']}", "AWS_LAMBDA_RUNTIME_API": "127.0.0.1:9001",
            "LAMBDA_TASK_ROOT": str(unpacked.task_root), "LAMBDA_RUNTIME_DIR": str(runtime_dir),
            "AWS_REGION": "us-east-1", "AWS_DEFAULT_REGION": "us-east-1", "TZ": ":UTC", "LANG": "en_US.UTF-8",
            "PATH": f"/usr/local/bin:/usr/bin:/bin:{unpacked.opt}/bin", "LD_LIBRARY_PATH": f"{unpacked.opt}/lib",
            "TMPDIR": str(tmp), "HOME": str(tmp),
            # The memory limit here is RLIMIT_AS (address space), stricter than Lambda's cgroup,
            # which counts pages used: glibc's per-thread malloc arenas reserve 64 MB of address
            # space each, so a handler's thread pool hit "can't start new thread" at 512 MB with
            # little memory used. Two arenas keep the limit about memory, not reservations.
            "MALLOC_ARENA_MAX": "2",
            # the function's configuration (sam.json), then the emulated cloud's names
            **props.get("Environment", {}).get("Variables", {}),
            "UPDRAFT_WORKROOT": str(tmp / "updraft"),
            **env,
        }
        self.log_path = workdir / f"{logical_id}.log"
        self._log = self.log_path.open("wb")
        started = time.perf_counter()
        self.proc = subprocess.Popen([str(python), "-I", "-S", str(BOOTSTRAP), str(unpacked.opt), str(self.timeout_s)],
                                     stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=self._log,
                                     cwd=unpacked.task_root, env=self.env)
        first = self._read(60.0)
        self.start_s = time.perf_counter() - started
        if "init_error" in first:
            self.close()
            raise FunctionError(first["init_error"])
        self.init_ms = float(first["init_ms"])
        self.sys_path: list[str] = first["sys_path"]
        self.invocations = 0

    def _read(self, timeout_s: float) -> dict[str, Any]:
        assert self.proc.stdout is not None
        ready, _, _ = select.select([self.proc.stdout], [], [], timeout_s)
        line = self.proc.stdout.readline() if ready else b""
        if not line:
            raise AssertionError(f"{self.logical_id} sent nothing (exit {self.proc.poll()}):\n{self.log()[-3000:]}")
        reply: dict[str, Any] = json.loads(line)
        return reply

    def invoke(self, event: Any) -> Any:
        assert self.proc.stdin is not None
        self.proc.stdin.write(json.dumps(event).encode() + b"\n")
        self.proc.stdin.flush()
        reply = self._read(self.timeout_s + 30.0)
        self.invocations += 1
        if "error" in reply:
            raise FunctionError(reply["error"])
        return reply["result"]

    def log(self) -> str:
        self._log.flush()
        return self.log_path.read_text(errors="replace")

    def close(self) -> None:
        if self.proc.stdin is not None and not self.proc.stdin.closed:
            self.proc.stdin.close()
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        if self.proc.stdout is not None:
            self.proc.stdout.close()
        self._log.close()
