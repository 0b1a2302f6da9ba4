"""scripts/venv's cheap paths: where the environment is, and names it refuses before making one.
(Making and reusing an environment is exercised by tests/docs, which builds one with it.)"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
VENV = REPO / "scripts" / "venv"


def run(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(VENV), *args], capture_output=True, text=True, timeout=60, check=False,
                          env={**os.environ, **(env or {})})


def test_path_is_the_repos_dotvenv_or_updraft_venv(tmp_path: Path) -> None:
    default = run("--path", env={"UPDRAFT_VENV": ""})
    assert default.returncode == 0 and default.stdout.strip() == str(REPO / ".venv")
    moved = run("--path", env={"UPDRAFT_VENV": str(tmp_path / "env")})
    assert moved.stdout.strip() == str(tmp_path / "env")
    assert not (tmp_path / "env").exists()  # --path makes nothing


def test_a_malformed_extra_is_refused_before_anything_is_made(tmp_path: Path) -> None:
    done = run("test;rm", env={"UPDRAFT_VENV": str(tmp_path / "env")})
    assert done.returncode == 2
    assert "'test;rm' is not an extra's name" in done.stderr
    assert not (tmp_path / "env").exists()
