"""The dependency cache and memoization for the task function and the Fargate worker.

Tiers: the instance's own /tmp (survives warm invocations) in front of the shared volume
(the EFS access point at UPDRAFT_CACHE_ROOT, shared by every function and worker of the
stage) in front of the origin (S3). Memoized results are indexed on the shared volume, so a
result computed by any function or worker is reused by all. Without a shared volume the
cache lives in /tmp alone: still correct, reused only by that warm instance.

The instance's own tier is kept within UPDRAFT_CACHE_BUDGET_MB (default: its filesystem's
size) minus the task's declared disk before each task is staged; objects a task is staging
or running with are never evicted (cache/budget.py).

Memo entries are signed with the stage's key object (memo_secret.py) when the stage has one.

Input hashes come from the producers' task records (one read per distinct producer), so a
task whose inputs are unchanged is recognised before anything is downloaded.
"""

from __future__ import annotations

import os
from functools import lru_cache

from chalicelib.backends.aws.config import AwsConfig
from chalicelib.backends.aws.memo_secret import read_memo_secret
from chalicelib.cache.cas import ContentStore
from chalicelib.cache.memo import MemoIndex
from chalicelib.cache.stage import TaskCache
from chalicelib.engine.ports import StateStore
from chalicelib.engine.spec import RunSpec
from chalicelib.workflow.model import Task


@lru_cache(maxsize=4)
def task_cache(config: AwsConfig) -> TaskCache:
    local = ContentStore(os.path.join(config.workroot, "cache"))
    budget = config.cache_budget_mb * 1024 * 1024  # 0: the size of /tmp or the worker's disk
    memo_root = os.path.join(config.cache_root or os.path.join(config.workroot, "cache"), "memo")
    memo = _memo_index(config, memo_root)
    if config.cache_root:
        return TaskCache(ContentStore(config.cache_root), memo, local_tier=local, budget_bytes=budget)
    return TaskCache(local, memo, budget_bytes=budget)


def _memo_index(config: AwsConfig, root: str) -> MemoIndex | None:
    """The memo index, signed with the stage's key object when the stage has one (memo_secret.py)."""
    if not config.memoize:
        return None
    if not config.memo_key_object:
        return MemoIndex(root)  # UPDRAFT_MEMO_KEY, else a key file beside the index
    secret = read_memo_secret(config)
    return MemoIndex(root, secret=secret) if secret is not None else None


def input_hashes(store: StateStore, spec: RunSpec, run_id: str, task: Task) -> dict[str, str]:
    """{input path: sha256} for the inputs whose producers reported their content."""
    producers = {spec.graph.producers[p] for p in task.inputs if p in spec.graph.producers}
    known: dict[str, str] = {}
    for producer in sorted(producers):
        result = store.get_task(run_id, producer).result
        if result is not None:
            known.update({p: h for p, h in result.outputs.items() if p in task.inputs})
    return known
