"""Helpers to drive the real `updraft` command as a user would (a subprocess)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[2]


def updraft(*args: str, workdir: Path | None = None, check: bool = False, timeout: float = 120,
            env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    cmd = [sys.executable, "-m", "chalicelib.cli", *args]
    if workdir is not None:
        cmd += ["--workdir", str(workdir)]
    full_env = {**os.environ, "PYTHONPATH": str(REPO), **(env or {})}
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, cwd=REPO, env=full_env)
    if check and proc.returncode != 0:
        raise AssertionError(f"{cmd} exited {proc.returncode}\n{proc.stdout}\n{proc.stderr}")
    return proc


def write_workflow(path: Path, tasks: list[dict[str, Any]], **top: Any) -> Path:
    path.write_text(json.dumps({"name": path.stem, "tasks": tasks, **top}))
    return path


def status(run_id: str, workdir: Path) -> dict[str, Any]:
    return json.loads(updraft("status", run_id, "--json", workdir=workdir, check=True).stdout)


def run_json(wf: Path, workdir: Path, *extra: str) -> tuple[int, dict[str, Any]]:
    proc = updraft("run", str(wf), "--json", *extra, workdir=workdir)
    try:
        return proc.returncode, json.loads(proc.stdout.strip().splitlines()[-1])
    except (IndexError, json.JSONDecodeError):
        raise AssertionError(f"no JSON from run: {proc.stdout}\n{proc.stderr}") from None
