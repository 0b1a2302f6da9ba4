"""What a Parsl or Dask task does: run one command as a child process and fail on a non-zero exit.

Imported by the Python peers' programs inside the benchmark's environment: standard library only.
"""

from __future__ import annotations

import subprocess
from collections.abc import Sequence
from typing import Any


def run_task(task_id: str, argv: Sequence[str] | None, script: str | None, *parents: Any) -> str:
    """Parents are passed only so the engine orders this task after them."""
    cmd: Sequence[str] | str = list(argv) if argv is not None else (script or "")
    proc = subprocess.run(cmd, shell=argv is None, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, check=False)
    if proc.returncode != 0:
        raise RuntimeError(f"task {task_id} exited {proc.returncode}: {proc.stderr.decode(errors='replace')[-500:]}")
    return task_id


def load_tasks(path: str) -> list[dict[str, Any]]:
    """The tasks file: [{id, argv, script, parents}] in a topological order."""
    import json

    with open(path, encoding="utf-8") as fh:
        return json.load(fh)
