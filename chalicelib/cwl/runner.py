"""`updraft-cwl-runner`: the standard cwl-runner interface over Updraft's local runtime.

    updraft-cwl-runner [--outdir DIR] [--quiet] [--workdir DIR] PROCESS.cwl [JOB.yml]

Prints the output object (JSON) on stdout; exit 0 on success, 33 for an unsupported
feature, 1 for a permanent failure (an invalid document or job, a failed step).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
from collections.abc import Sequence
from typing import Any

from chalicelib.cwl.errors import UNSUPPORTED_EXIT, CwlError, Unsupported
from chalicelib.cwl.job import load_and_plan, output_object
from chalicelib.engine.states import TaskState
from chalicelib.errors import UpdraftError

PERMANENT_FAILURE = 1


def run(process: str, job_path: str | None, outdir: str, workdir: str | None, quiet: bool) -> dict[str, Any]:
    from chalicelib.backends.local.runtime import LocalRuntime, RuntimeOptions
    from chalicelib.engine.states import RunState

    wf, final = load_and_plan(process, job_path)
    if not wf.tasks:  # a workflow without steps: its outputs come from its inputs
        os.makedirs(outdir, exist_ok=True)
        return output_object(None, "", final, outdir)
    own = workdir is None
    work = workdir or tempfile.mkdtemp(prefix="updraft-cwl-")
    try:
        opts = RuntimeOptions()
        if own:
            opts.memoize = False
        with LocalRuntime(work, opts) as rt:
            record = rt.submit(wf, None, process)
            record = rt.run(record.run_id)
            if record.state != RunState.SUCCEEDED:
                _explain_failure(rt, record.run_id, quiet)
            os.makedirs(outdir, exist_ok=True)
            return output_object(rt, record.run_id, final, outdir)
    finally:
        if own:
            shutil.rmtree(work, ignore_errors=True)


def _explain_failure(rt: Any, run_id: str, quiet: bool) -> None:
    unsupported = False
    for t in rt.store.iter_tasks(run_id):
        if t.state is TaskState.SUCCEEDED:
            continue
        tail = ((t.result.log_tail if t.result is not None else None) or "").strip()
        if (t.result is not None and t.result.exit_code == UNSUPPORTED_EXIT) or "cwl: unsupported:" in tail:
            unsupported = True
        if tail:
            sys.stderr.write(f"task {t.task_id} {t.state.value}: {tail[-2000:]}\n")
    if unsupported:
        raise Unsupported("a step needs a feature this runner does not support (see above)")
    raise CwlError("the run failed (see the task logs above)")


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="updraft-cwl-runner", description="Run a CWL v1.2 process with Updraft.")
    p.add_argument("--outdir", default=os.getcwd(), help="where the output files go (default: here)")
    p.add_argument("--quiet", action="store_true", help="only errors on stderr")
    p.add_argument("--workdir", default=None, help="Updraft work dir (default: a temporary one, removed after)")
    p.add_argument("--version", action="version", version="updraft-cwl-runner 0.1 (CWL v1.2)")
    p.add_argument("process", help="the CWL document (FILE or FILE#id)")
    p.add_argument("job", nargs="?", help="the job: input values (JSON or YAML)")
    return p


def main(argv: Sequence[str] | None = None) -> int:
    args, _unknown = build_parser().parse_known_args(argv)
    try:
        out = run(args.process, args.job, os.path.abspath(args.outdir), args.workdir, args.quiet)
    except Unsupported as exc:
        sys.stderr.write(f"updraft-cwl-runner: unsupported: {exc}\n")
        return UNSUPPORTED_EXIT
    except (CwlError, UpdraftError) as exc:
        sys.stderr.write(f"updraft-cwl-runner: {exc}\n")
        return PERMANENT_FAILURE
    json.dump(out, sys.stdout, indent=2, sort_keys=True)
    sys.stdout.write("\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
