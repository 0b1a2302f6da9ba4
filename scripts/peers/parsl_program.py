"""A Parsl program running a tasks file: one python_app call per task, each waiting on its
parents' futures (passed as arguments), on Parsl's thread pool executor.

    python parsl_program.py TASKS.json CORES RUN_DIR
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from typing import Any

from task_exec import load_tasks, run_task


def submit(tasks: list[dict[str, Any]], app: Callable[..., Any]) -> dict[str, Any]:
    futures: dict[str, Any] = {}
    for t in tasks:
        futures[t["id"]] = app(t["id"], t["argv"], t["script"], *[futures[p] for p in t["parents"]])
    return futures


def main(argv: list[str]) -> int:
    path, cores, run_dir = argv[0], int(argv[1]), argv[2]
    import parsl
    from parsl.config import Config
    from parsl.executors.threads import ThreadPoolExecutor

    parsl.load(Config(executors=[ThreadPoolExecutor(max_threads=cores)], run_dir=run_dir))
    try:
        futures = submit(load_tasks(path), parsl.python_app(run_task))
        done = sum(1 for f in futures.values() if f.result())
    finally:
        parsl.dfk().cleanup()
    print(json.dumps({"done": done}))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
