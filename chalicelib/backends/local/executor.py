"""Execute a local run in its own process, so submit and resume return at once.

    python -m chalicelib.backends.local.executor RUN_ID --workdir DIR [--concurrency N]

`start()` spawns it detached (own session; output in <workdir>/executor/<run>.log) and returns
only once the process holds the run's lock, so a caller that looks right after sees an owner:
a RUNNING run without one is a run nobody executes (a crash), not one still starting.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from chalicelib.engine.states import RunState
from chalicelib.errors import UpdraftError

if TYPE_CHECKING:
    from chalicelib.backends.local.runtime import RuntimeOptions

START_TIMEOUT_S = 20.0
REPO_ROOT = str(Path(__file__).resolve().parents[2])


class ExecutorError(UpdraftError):
    """The executor process did not start; carries the end of its output."""


def log_path(workdir: str, run_id: str) -> str:
    return os.path.join(workdir, "executor", f"{run_id}.log")


def start(workdir: str, run_id: str, concurrency: int | None = None,
          timeout_s: float = START_TIMEOUT_S) -> int:
    """Spawn the executor for `run_id`; returns its pid once it owns the run."""
    from chalicelib.backends.local.compose import foreground

    path = log_path(workdir, run_id)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    cmd = [sys.executable, "-m", "chalicelib.backends.local.executor", run_id, "--workdir", workdir]
    if concurrency:
        cmd += ["--concurrency", str(concurrency)]
    env = dict(os.environ)
    env["PYTHONPATH"] = REPO_ROOT + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
    with open(path, "ab") as log:
        proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT, env=env,
                                start_new_session=True, close_fds=True)
    rt = foreground(workdir)
    try:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            owner = rt.owner_pid(run_id)
            if owner == proc.pid:
                return proc.pid
            if proc.poll() is not None:
                # it may have finished already (a tiny run): then the run is no longer RUNNING
                if rt.store.get_run(run_id).state is not RunState.RUNNING:
                    return proc.pid
                raise ExecutorError(f"the executor of run {run_id} exited with code {proc.returncode}:\n"
                                    f"{_tail(path)}")
            time.sleep(0.02)
    finally:
        rt.close()
    proc.kill()
    raise ExecutorError(f"the executor of run {run_id} did not start within {timeout_s:.0f} s; see {path}")


def _tail(path: str, lines: int = 15) -> str:
    try:
        with open(path, encoding="utf-8", errors="replace") as fh:
            return "".join(fh.readlines()[-lines:])
    except OSError:
        return ""


def main(argv: Sequence[str] | None = None) -> int:
    from chalicelib.backends.local.compose import foreground

    parser = argparse.ArgumentParser(prog="python -m chalicelib.backends.local.executor")
    parser.add_argument("run_id")
    parser.add_argument("--workdir", required=True)
    parser.add_argument("--concurrency", type=int, default=None)
    args = parser.parse_args(argv)
    try:
        rt = foreground(args.workdir, _run_options(args.workdir, args.run_id, args.concurrency))
    except UpdraftError as exc:
        sys.stderr.write(f"updraft executor: {exc}\n")
        return exc.exit_code
    try:
        run = rt.run(args.run_id)
    except UpdraftError as exc:
        sys.stderr.write(f"updraft executor: {exc}\n")
        return exc.exit_code
    finally:
        rt.close()
    print(f"run {run.run_id}: {run.state.value}")
    return 0


def _run_options(workdir: str, run_id: str, concurrency: int | None) -> RuntimeOptions:
    """The options the run was made with by `updraft run` (service/run_origin.py): a run
    resumed from the dashboard or the SDK keeps its --no-cache, --emulate-lambda, --rerun and
    --concurrency, as `updraft resume` does; `concurrency` given here wins."""
    from chalicelib.backends.local.compose import foreground, options
    from chalicelib.service.run_origin import Submitted

    probe = foreground(workdir, options(concurrency))
    try:
        stored = Submitted.of(probe.store.get_run(run_id).options)
    finally:
        probe.close()
    given = stored.options if stored is not None else {}
    opts = options(concurrency or given.get("concurrency"), memoize=not given.get("no_cache"),
                   rerun=tuple(given.get("rerun") or ()))
    opts.emulate_lambda = bool(given.get("emulate_lambda"))
    return opts


if __name__ == "__main__":
    sys.exit(main())
