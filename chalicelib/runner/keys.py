"""Where a run's files live in the blob store."""

from __future__ import annotations


def data_key(run_id: str, path: str) -> str:
    return f"runs/{run_id}/data/{path}"


def log_key(run_id: str, task_id: str, attempt: int) -> str:
    return f"runs/{run_id}/logs/{task_id}.{attempt}.log"
