"""A Dask program running a tasks file: one dask.delayed call per task, its parents passed as
arguments, computed on the threaded scheduler or on a distributed LocalCluster.

    python dask_program.py TASKS.json CORES threads|distributed
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from typing import Any

from task_exec import load_tasks, run_task


def build(tasks: list[dict[str, Any]], delayed: Callable[..., Any]) -> dict[str, Any]:
    nodes: dict[str, Any] = {}
    fn = delayed(run_task, pure=False)
    for t in tasks:
        nodes[t["id"]] = fn(t["id"], t["argv"], t["script"], *[nodes[p] for p in t["parents"]],
                            dask_key_name=t["id"])
    return nodes


def main(argv: list[str]) -> int:
    path, cores, mode = argv[0], int(argv[1]), argv[2]
    import dask

    nodes = build(load_tasks(path), dask.delayed)
    if mode == "threads":
        results = dask.compute(*nodes.values(), scheduler="threads", num_workers=cores)
    elif mode == "distributed":
        from dask.distributed import Client, LocalCluster

        with LocalCluster(n_workers=cores, threads_per_worker=1, dashboard_address=None) as cluster, \
                Client(cluster):
            results = dask.compute(*nodes.values())
    else:
        raise SystemExit(f"unknown mode {mode!r}")
    print(json.dumps({"done": len(results)}))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
