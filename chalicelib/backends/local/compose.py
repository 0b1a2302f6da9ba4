"""The local backend's composition root: every LocalRuntime the CLI, the local server, the
SDK's local transport and the executor process use is assembled here.

    foreground(workdir, ...)   the CLI: it executes the run itself, in this process
    served(workdir, ...)       the local server / SDK: a submitted or resumed run is executed
                               by an executor process (chalicelib/backends/local/executor.py)
"""

from __future__ import annotations

from collections.abc import Sequence

from chalicelib.backends.local.runtime import LocalRuntime, RuntimeOptions


def options(concurrency: int | None = None, memoize: bool = True, rerun: Sequence[str] = ()) -> RuntimeOptions:
    opts = RuntimeOptions()
    if concurrency:
        opts.concurrency = opts.container_workers = concurrency
    opts.memoize = memoize
    opts.rerun = tuple(rerun)
    return opts


def foreground(workdir: str | None, opts: RuntimeOptions | None = None) -> LocalRuntime:
    """A runtime whose `start` does nothing: the caller runs the run in this process."""
    return LocalRuntime(workdir, opts)


def served(workdir: str | None, concurrency: int | None = None) -> LocalRuntime:
    """A runtime whose `start` spawns an executor process for the run and returns once it
    owns the run."""
    rt = LocalRuntime(workdir, options(concurrency))
    where = rt.workdir

    def start(run_id: str) -> int:
        from chalicelib.backends.local import executor  # looked up per call: tests may replace it

        return executor.start(where, run_id, concurrency)

    rt.starter = start
    return rt
