"""The `updraft` command.

Exit codes: 0 success (run SUCCEEDED / file valid), 1 run not successful, 2 usage or
validation error. Errors a user can fix print one clear message, never a traceback.
"""

from __future__ import annotations

import argparse
import errno
import json
import os
import sys
import time
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any, TextIO, cast

from chalicelib.engine.states import DONE_OK, TASK_STATE_ORDER, TERMINAL_TASK, RunState, TaskState, ordered
from chalicelib.errors import ConfigError, UpdraftError

if TYPE_CHECKING:
    from chalicelib.engine.records import TaskRecord


def _print_json(obj: Any, out: TextIO = sys.stdout) -> None:
    out.write(json.dumps(obj, indent=None, separators=(",", ":"), sort_keys=False) + "\n")


def _workdir_of(args: argparse.Namespace) -> str:
    from chalicelib.backends.local.runtime import workdir_path

    return workdir_path(args.workdir)


def _has_runs(workdir: str) -> bool:
    """Whether runs were made in `workdir` (a command that only reads does not create it)."""
    return os.path.exists(os.path.join(workdir, "state.db"))


def _existing_workdir(args: argparse.Namespace) -> str:
    """The work dir, when runs were made there; NotFoundError naming the place otherwise."""
    from chalicelib.errors import NotFoundError

    workdir = _workdir_of(args)
    if not _has_runs(workdir):
        raise NotFoundError(f"no runs in {workdir}: nothing has run there; pass the --workdir the run used "
                            "(or set UPDRAFT_HOME), or start one with `updraft run FILE`")
    return workdir


def _existing_runtime(args: argparse.Namespace) -> Any:
    """The runtime of a work dir that has runs; NotFoundError naming the place otherwise. A
    RUN given as `latest` becomes the newest run's id."""
    _existing_workdir(args)
    rt = _runtime(args)
    if getattr(args, "run", None) == "latest":
        from chalicelib.outputs.run_commands import resolve

        try:
            args.run = resolve(rt, args.run)
        except BaseException:
            rt.close()
            raise
    return rt


def _runtime(args: argparse.Namespace) -> Any:
    """The CLI's local runtime (backends/local/compose.py): it executes runs in this process."""
    from chalicelib.backends.local.compose import foreground, options

    opts = options(getattr(args, "concurrency", None), memoize=not getattr(args, "no_cache", False),
                   rerun=getattr(args, "rerun", None) or ())
    opts.emulate_lambda = bool(getattr(args, "emulate_lambda", False))
    opts.sole_process = True  # this process runs nothing but the engine: see RuntimeOptions
    return foreground(args.workdir, opts)


def _load(args: argparse.Namespace) -> Any:
    from chalicelib.workflow.formats import load
    from chalicelib.workflow.formats.context import importing

    if getattr(args, "job", None):  # a CWL process and its job
        from chalicelib.workflow.formats.cwl import load_with_job

        return load_with_job(args.file, args.job)
    with importing(_import_context(args)):
        return load(args.file, getattr(args, "format", None))


def _import_context(args: argparse.Namespace) -> Any:
    """What `makeflow` would see when reading the file: this environment, --jx-args/-define."""
    from chalicelib.workflow.formats.context import from_options

    return from_options(os.environ, getattr(args, "jx_args", None), getattr(args, "jx_define", None))


def _jx_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--jx-args", action="append", metavar="FILE",
                   help="JX workflows: a JX object of values to bind (repeatable)")
    p.add_argument("--jx-define", action="append", metavar="NAME=EXPR",
                   help="JX workflows: bind NAME to a JX expression, after --jx-args (repeatable)")


def _cwl_outputs(rt: Any, run_id: str, args: argparse.Namespace) -> None:
    """After a successful CWL run: its files in --outdir, its output object on stdout (after
    the summary; with --json the one JSON object stays the summary's)."""
    from chalicelib.workflow.formats import cwl

    if not (args.job or args.format == cwl.NAME or args.file.endswith(".cwl")):
        return
    obj = cwl.write_outputs(rt, run_id, args.file, args.job, args.outdir or ".")
    if not args.json:
        _print_json(obj)


# ---- progress -----------------------------------------------------------------------------

def _tracker(rt: Any, run_id: str, total: int) -> Any:
    """The progress display of a run this process executes (chalicelib/ui/progress.py), on
    standard error: live on a terminal, timestamped lines elsewhere."""
    from chalicelib.ui.display import open_display
    from chalicelib.ui.progress import Tracker, logs_command
    from chalicelib.ui.progress_sources import LocalSource

    display = open_display(sys.stderr)
    display.start(run_id, total, f"workdir {rt.workdir}")
    return Tracker(run_id, total, LocalSource(rt, run_id), display, logs_command(run_id, rt.workdir))


# ---- commands -----------------------------------------------------------------------------

def cmd_validate(args: argparse.Namespace) -> int:
    from chalicelib.workflow.graph import summarize
    from chalicelib.workflow.validate import validate

    wf = validate(_load(args), args.file, lambda_limits=args.emulate_lambda)
    s = summarize(wf)
    print(f"{args.file}: valid, {s.tasks} tasks, {s.edges} edges, {s.levels} levels")
    if s.external_inputs:
        print(f"external inputs ({len(s.external_inputs)}):")
        for path in s.external_inputs[:100]:
            print(f"  {path}")
        if len(s.external_inputs) > 100:
            print(f"  ... and {len(s.external_inputs) - 100} more (updraft show --json lists all)")
    return 0


def cmd_convert(args: argparse.Namespace) -> int:
    from chalicelib.workflow.convert import convert
    from chalicelib.workflow.formats.context import importing

    with importing(_import_context(args)):
        text = convert(args.file, to=args.to, fmt=args.format)
    if args.output in (None, "-"):
        sys.stdout.write(text)
    else:
        try:
            with open(args.output, "w", encoding="utf-8") as fh:
                fh.write(text)
        except OSError as exc:
            raise ConfigError(f"cannot write {args.output}: {exc.strerror or exc}; name a file in an "
                              "existing folder with -o, or leave -o out to print the result") from None
        sys.stderr.write(f"{args.file}: written to {args.output} ({args.to})\n")
    return 0


def cmd_show(args: argparse.Namespace) -> int:
    from chalicelib.workflow.graph import summarize
    from chalicelib.workflow.validate import validate

    wf = validate(_load(args), args.file, lambda_limits=False)
    if args.dag:
        return _write_dag(wf, args)
    s = summarize(wf)
    if args.json:
        _print_json(s.to_dict())
        return 0
    print(f"workflow        {s.name}")
    print(f"tasks           {s.tasks}")
    print(f"edges           {s.edges}")
    print(f"levels          {s.levels}")
    print(f"max width       {s.max_width}")
    print(f"critical path   {s.critical_path_length} tasks")
    print("task types      " + ", ".join(f"{k} x{v}" for k, v in s.task_types.items()))
    print(f"external inputs {len(s.external_inputs)}")
    for path in s.external_inputs[:20]:
        print(f"  {path}")
    if len(s.external_inputs) > 20:
        print(f"  ... and {len(s.external_inputs) - 20} more")
    return 0


def _write_dag(wf: Any, args: argparse.Namespace) -> int:
    """`show --dag OUT`: the DAG as a picture, its format from OUT's extension
    (workflow/dag_picture.py); written whole or not at all."""
    from chalicelib.workflow import dag_picture

    fmt = dag_picture.format_of(args.dag)
    pic = dag_picture.picture(wf, args.dag_by)
    dag_picture.write(args.dag, dag_picture.render(pic, fmt, wf.name))
    what = f"{len(pic.nodes)} task types" if pic.collapsed else f"{len(pic.nodes)} tasks"
    print(f"{args.file}: DAG of {pic.tasks} tasks written to {args.dag} ({fmt}, {what}, {len(pic.edges)} edges)")
    return 0


def _finish_report(rt: Any, run_id: str, wall: float, as_json: bool, extra: dict[str, Any] | None = None) -> int:
    from chalicelib.engine.states import TaskState

    run = rt.store.get_run(run_id)
    counts = rt.store.counts(run_id)
    if as_json:
        failed = [{"id": rec.task_id, "reason": rec.reason, "attempt": rec.attempt,
                   **({"failed_parent": rec.failed_parent} if rec.failed_parent is not None else {})}
                  for rec in rt.store.iter_tasks(run_id, [TaskState.FAILED, TaskState.UPSTREAM_FAILED])]
        _print_json({"run_id": run_id, "state": run.state.value, "counts": counts, "wall_s": round(wall, 3),
                     "failed": failed, **(extra or {})})
    else:
        _summary_table(rt, run_id, wall)
    return 0 if run.state is RunState.SUCCEEDED else 1


def _summary_table(rt: Any, run_id: str, wall: float) -> None:
    run = rt.store.get_run(run_id)
    spec = rt.specs.get(run_id)
    by_type: dict[str, dict[str, float]] = {}
    failed: list[Any] = []  # the first 10 failed records (their log tails are shown)
    skipped: dict[str, int] = {}  # UPSTREAM_FAILED tasks per failed task they depend on
    total = 0
    for rec in rt.store.iter_tasks(run_id):
        total += 1
        ttype = spec.tasks[rec.task_id].task_type
        row = by_type.setdefault(ttype, {"n": 0, "ok": 0, "bad": 0, "cached": 0, "time": 0.0})
        row["n"] += 1
        row["ok" if rec.state in DONE_OK else "bad"] += 1
        row["cached"] += rec.state is TaskState.CACHED
        row["time"] += (rec.result.duration_s if rec.result else None) or 0.0
        row["time"] += sum(t.duration_s or 0.0 for t in rec.tries)  # the failed attempts that were retried
        if rec.state is TaskState.FAILED and len(failed) < 10:
            failed.append(rec)
        elif rec.state is TaskState.UPSTREAM_FAILED:
            parent = rec.failed_parent or "an upstream task"
            skipped[parent] = skipped.get(parent, 0) + 1
    print(f"run {run_id}  {run.state.value}  {total} tasks in {wall:.2f} s")
    print(f"  {'task type':<24} {'tasks':>6} {'ok':>6} {'not ok':>6} {'task time s':>12} {'cached':>6}")
    for ttype, row in sorted(by_type.items()):
        print(f"  {ttype[:24]:<24} {int(row['n']):>6} {int(row['ok']):>6} {int(row['bad']):>6} {row['time']:>12.2f} "
              f"{int(row['cached']):>6}")
    for rec in failed:
        print(f"  FAILED {rec.task_id} (attempt {rec.attempt}): {rec.reason}")
        tail = ((rec.result.log_tail if rec.result else None) or "").strip().splitlines()[-5:]
        for line in tail:
            print(f"    | {line}")
    for parent, n in sorted(skipped.items(), key=lambda kv: -kv[1])[:10]:
        print(f"  UPSTREAM_FAILED {n} task{'s' if n > 1 else ''}: not run, because {parent} failed")
    if failed:
        print(f"  logs: updraft logs {run_id} TASK --workdir {rt.workdir}")
    print(f"  outputs: {os.path.join(rt.blob_root, 'runs', run_id, 'data')}")


def cmd_run(args: argparse.Namespace) -> int:
    if getattr(args, "dry_run", False):
        return cmd_dry_run(args)
    return _run_file(args)


def _prepared(args: argparse.Namespace) -> Any:
    """The workflow `run` would submit: loaded, turned into a replay if asked, validated."""
    from chalicelib.workflow.validate import validate

    wf = _load(args)
    if getattr(args, "replay", False):
        from chalicelib.workflow.replay import to_replay

        wf = to_replay(wf, time_scale=args.time_scale, size_scale=args.size_scale)
    validate(wf, args.file, lambda_limits=args.emulate_lambda)
    return wf


def _planned(workdir: str, wf: Any, args: argparse.Namespace) -> tuple[Any, bool]:
    """The workflow placed and sized by the planner when --objective/--deadline/--budget ask
    (with what the work dir's history says of its task types)."""
    planned = bool(args.objective or args.deadline is not None or args.budget is not None)
    if planned:
        from chalicelib.planner import apply_plan, make_plan, perf_model

        plan = make_plan(wf, args.objective, args.deadline, args.budget, perf=perf_model(workdir))
        wf = apply_plan(wf, plan)
    return wf, planned


def _run_file(args: argparse.Namespace, resumed_from: str | None = None,
              announce: Callable[[str], None] | None = None, wf: Any = None) -> int:
    """Submit `args.file` (`wf`: as `_prepared` read it, when the caller did) as a new run and
    execute it; the options it was given are stored with it (service/run_origin.py) for `resume`."""
    from msgspec.structs import replace

    from chalicelib.service import run_origin
    from chalicelib.service.submission import submit

    wf = wf if wf is not None else _prepared(args)
    with _runtime(args) as rt:
        from chalicelib.outputs.commands import after_success, with_publish

        wf, planned = _planned(rt.workdir, wf, args)
        request = rt.request(wf, args.data, args.file, validated=not planned)  # a plan changes what was validated
        request = with_publish(request, wf, args)  # --outdir, the workflow's publish rules
        submitted = run_origin.capture(vars(args), args.file, resumed_from)
        request = replace(request, options={**request.options, run_origin.KEY: submitted.to_dict()})
        run = submit(rt, request)
        if announce is not None:
            announce(run.run_id)
        code = _execute(rt, run.run_id, run.task_count, args, resume=False,
                        extra={"resumed_from": resumed_from} if resumed_from else None)
        _learn(rt, run.run_id, wf)
        if code == 0:
            _cwl_outputs(rt, run.run_id, args)
            code = after_success(rt, run.run_id, args)  # --outdir, the workflow's publish rules
        return code


def cmd_dry_run(args: argparse.Namespace) -> int:
    """`run --dry-run`: validate, find the inputs, and say per task (topological order)
    whether it is cached or would run, and where; nothing is written (backends/local/dry_run.py)."""
    from chalicelib.backends.local import dry_run
    from chalicelib.backends.local.runtime import input_sources, may_reuse, resolve_deps

    workdir = _workdir_of(args)
    wf, _ = _planned(workdir, _prepared(args), args)
    if any(t.deps for t in wf.tasks):
        wf = resolve_deps(wf)
    patterns = tuple(args.rerun or ())
    steps = dry_run.predict(wf, input_sources(wf, args.data), os.path.join(workdir, "cache"),
                            memoize=not args.no_cache,
                            reuse=lambda task: may_reuse(task, patterns))
    if args.json:
        _print_json({"file": args.file, "dry_run": True, "tasks": len(steps), **dry_run.summary(steps),
                     "steps": [s.to_dict() for s in steps]})
    else:
        print("\n".join(dry_run.table(steps, f"{args.file} (valid)")))
    return 0


def _learn(rt: Any, run_id: str, wf: Any) -> None:
    """Feed the finished run's measured tasks to the planner's history (best effort)."""
    from chalicelib.planner import record_history

    try:
        record_history(rt.workdir, wf, rt.store.iter_tasks(run_id))
    except OSError as exc:
        sys.stderr.write(f"updraft: could not record task history: {exc}\n")


def _execute(rt: Any, run_id: str, total: int, args: argparse.Namespace, resume: bool,
             extra: dict[str, Any] | None = None) -> int:
    tracker = _tracker(rt, run_id, total)
    started = time.monotonic()
    run = None
    try:
        run = rt.resume(run_id, tracker) if resume else rt.run(run_id, tracker)
    finally:
        final = run or rt.store.get_run(run_id)
        tracker.close(final.state.value, rt.store.counts(run_id), time.monotonic() - started)
    code = _finish_report(rt, run_id, time.monotonic() - started, args.json, extra)
    sys.stdout.flush()  # the summary before the hint, also where both go to one pipe
    _resume_hint(run_id, final.state, rt.workdir)
    return code


def _resume_hint(run_id: str, state: RunState, workdir: str) -> None:
    """After a run stopped (Ctrl-C, `updraft cancel`, a closed terminal) or failed: the
    command that takes it up again."""
    from chalicelib.ui.progress import resume_command

    if state is RunState.CANCELLED:
        sys.stderr.write(f"resume with: {resume_command(run_id, workdir)}\n")
    elif state is RunState.FAILED:
        sys.stderr.write(f"re-run what failed, after a fix: {resume_command(run_id, workdir)}\n")


def cache_metrics(tasks: Sequence[TaskRecord]) -> dict[str, int]:
    """A run's cache figures: hits and misses, bytes from the origin and from the cache."""
    out = {"hits": 0, "misses": 0, "bytes_from_origin": 0, "bytes_from_cache": 0, "memo_hits": 0,
           "tasks_executed": 0}
    for t in tasks:
        c = t.result.cache if t.result is not None else None
        memo_hit = c is not None and c.memo == "hit"
        if c is not None:
            out["hits"] += c.hits
            out["misses"] += c.misses
            out["bytes_from_origin"] += c.bytes_from_origin
            out["bytes_from_cache"] += c.bytes_from_cache
        out["memo_hits"] += memo_hit
        out["tasks_executed"] += t.state in (TaskState.SUCCEEDED, TaskState.FAILED) and not memo_hit
    return out


def cmd_status(args: argparse.Namespace) -> int:
    from chalicelib.service import runs

    with _existing_runtime(args) as rt:
        run_id = args.run or runs.latest_run_id(rt, rt.workdir)
        run, counts, tasks = runs.snapshot(rt, run_id)
        wanted = _states_of(args.state)
        if wanted:
            tasks = [t for t in tasks if t.state.value in wanted]
        if args.json:
            _print_json({
                "run_id": run_id, "state": run.state.value, "counts": counts,
                "created_at": run.created_at, "finished_at": run.finished_at,
                "cache": cache_metrics(tasks),
                "tasks": [t.to_dict() for t in tasks],
            })
            return 0
        by_state = " ".join(f"{s}={n}" for s, n in ordered(counts))
        print(f"run {run_id} ({run.name}): {run.state.value}  {by_state}")
        if run.state is RunState.RUNNING and rt.owner_pid(run_id) is None:
            print(f"  no live process is running it (stopped or killed): `updraft resume {run_id}` finishes it")
        print(f"  {'task':<32} {'state':<16} {'try':>3} {'placement':<10} {'secs':>8} reason")
        for t in tasks:
            dur = t.result.duration_s if t.result is not None else None
            secs = f"{dur:.2f}" if dur is not None else ""
            parent = t.failed_parent  # UPSTREAM_FAILED: the failed task it waited on
            reason = f"{t.reason or ''} ({parent} failed)" if parent else (t.reason or "")
            print(f"  {t.task_id[:32]:<32} {t.state.value:<16} {t.attempt:>3} {t.placement:<10} {secs:>8} {reason}")
        return 0


def _states_of(values: Sequence[str] | None) -> set[str]:
    """--state FAILED --state cached,running: the named task states (upper case); ConfigError
    naming the states for an unknown one."""
    wanted = {v.strip().upper() for value in values or () for v in value.split(",") if v.strip()}
    names = [s.value for s in TASK_STATE_ORDER]
    unknown = sorted(wanted - set(names))
    if unknown:
        raise ConfigError(f"unknown task state {', '.join(unknown)} for --state; states: {', '.join(names)}")
    return wanted


def _task_or_suggest(rt: Any, run_id: str, task_id: str) -> Any:
    """The task's record; NotFoundError naming the closest ids (`blastn_000` -> `blastn-000`)."""
    from chalicelib.errors import NotFoundError
    from chalicelib.service.suggest import similar_ids

    try:
        return rt.store.get_task(run_id, task_id)
    except NotFoundError:
        close = similar_ids(task_id, (t.task_id for t in rt.store.iter_tasks(run_id)))
        hint = f"; did you mean {', '.join(close)}?" if close else "; `updraft status RUN` lists its tasks"
        raise NotFoundError(f"run {run_id} has no task {task_id}{hint}") from None


def cmd_logs(args: argparse.Namespace) -> int:
    from chalicelib.errors import ConfigError, NotFoundError
    from chalicelib.runner.keys import log_key
    from chalicelib.ui.commands import cmd_cloud_logs, wants_cloud_logs

    if wants_cloud_logs(args):
        return cmd_cloud_logs(args)
    if args.task is None:
        raise ConfigError("name the task: updraft logs RUN TASK (or read a deployed run's lines with --stage STAGE)")
    with _existing_runtime(args) as rt:
        rt.store.get_run(args.run)  # an unknown run is named as such, not as an unknown task
        rec = _task_or_suggest(rt, args.run, args.task)
        if args.attempt and args.attempt > rec.attempt:
            raise NotFoundError(f"task {args.task} has had {rec.attempt} attempt(s): "
                                f"--attempt takes 1 to {rec.attempt}")
        attempts = [args.attempt] if args.attempt else list(range(1, rec.attempt + 1))
        shown = 0
        for attempt in attempts:
            key = log_key(args.run, args.task, attempt)
            if rt.blobs.exists(key):
                if len(attempts) > 1:
                    print(f"==> attempt {attempt} <==")
                _copy_log(rt.blobs, key, args.tail)
                shown += 1
        if not shown:
            tail = rec.result.log_tail if rec.result is not None else None
            if tail:
                print(tail)
            elif rec.state not in TERMINAL_TASK:
                raise NotFoundError(f"task {args.task} is {rec.state.value}; its log is stored when it ends")
            else:
                print(f"(task {args.task} printed nothing)")
        return 0


def _copy_log(blobs: Any, key: str, lines: int | None) -> None:
    """Write a stored log (its last `lines` lines) to standard output a block at a time: a
    log of gigabytes costs a block of memory, not its size."""
    from chalicelib.runner.log_read import chunks, last_lines_start

    start = last_lines_start(blobs, key, lines) if lines is not None else 0
    sys.stdout.flush()
    out = sys.stdout.buffer
    for block in chunks(blobs, key, start):
        out.write(block)
    out.flush()


def cmd_resume(args: argparse.Namespace) -> int:
    """Resume with the options the run was made with (a flag given here overrides one); an
    edited workflow file runs as a new run reusing unchanged tasks (service/run_origin.py)."""
    from chalicelib.service import run_origin

    with _existing_runtime(args) as rt:
        run = rt.store.get_run(args.run)
    stored = run_origin.Submitted.of(run.options)
    options, overrides = run_origin.execution_options(
        stored, {k: getattr(args, k, None) for k in run_origin.EXECUTION_FIELDS})
    for override in overrides:
        sys.stderr.write(f"updraft: {override.describe()}\n")
    vars(args).update(options)
    change = run_origin.compare(stored) if stored is not None else None
    mode = run_origin.choose(run.run_id, stored, change, args.reload)
    if mode == run_origin.RELOAD and stored is not None and change is not None:
        return _resume_edited(args, run, stored, change)
    note = run_origin.describe(run.run_id, change, mode)
    if note:
        sys.stderr.write(f"updraft: {note}\n")
    if args.dry_run:
        return _resume_dry_run(args, run)
    from chalicelib.outputs.commands import after_success

    with _runtime(args) as rt:
        if run.state is RunState.SUCCEEDED:  # nothing to run again: its summary, then publish (again)
            code = _finish_report(rt, run.run_id, 0.0, args.json)
        else:
            code = _execute(rt, run.run_id, run.task_count, args, resume=True)
        return after_success(rt, run.run_id, args) if code == 0 else code


def _resume_dry_run(args: argparse.Namespace, run: Any) -> int:
    """`resume --dry-run` in place: which tasks the run keeps and which it would run again."""
    from chalicelib.backends.local import dry_run

    with _existing_runtime(args) as rt:
        steps = dry_run.in_place(rt.specs.get(run.run_id), {r.task_id: r for r in rt.store.iter_tasks(run.run_id)})
    if args.json:
        _print_json({"run_id": run.run_id, "dry_run": True, "tasks": len(steps), **dry_run.summary(steps),
                     "steps": [s.to_dict() for s in steps]})
    else:
        print("\n".join(dry_run.table(steps, f"run {run.run_id}")))
    return 0


def _resume_edited(args: argparse.Namespace, run: Any, stored: Any, change: Any) -> int:
    """Run the edited file as a new run with the old run's options; the old run, if a killed
    process left it RUNNING, is cancelled (the new run supersedes it)."""
    from chalicelib.errors import RunBusyError
    from chalicelib.service import run_origin

    loaded = {k: stored.options.get(k) for k in run_origin.ORIGIN_FIELDS}
    from chalicelib.outputs.publish import OPTION as PUBLISH

    published = run.options.get(PUBLISH) or {}
    # the new run publishes where the old one would have: resume's --outdir, else the run's own
    outdir = getattr(args, "outdir", None) or (published.get("base") if published.get("outdir") else None)
    new_args = argparse.Namespace(**{**vars(args), **loaded, "file": stored.file, "outdir": outdir})
    if args.dry_run:  # what the edited file's new run would do
        sys.stderr.write(f"updraft: the {change.what} {change.file} changed since run {run.run_id} was submitted: "
                         "resume would run the edited file as a new run, which would do this\n")
        return cmd_dry_run(new_args)
    wf = _prepared(new_args)  # an edit that broke the file is refused before anything changes
    with _runtime(args) as rt:
        pid = rt.owner(run.run_id)
        if pid is not None:
            raise RunBusyError(f"run {run.run_id} is being executed by process {pid}; wait for it or "
                               f"`updraft cancel {run.run_id}`, then resume")
        if run.state is RunState.RUNNING:
            rt.cancel(run.run_id)

    def announce(new_run: str) -> None:
        sys.stderr.write(f"updraft: {run_origin.describe(run.run_id, change, run_origin.RELOAD, new_run)}\n")
        if args.no_cache:
            sys.stderr.write("updraft: --no-cache (the run's): no result is reused or kept, every task of the "
                             "edited file runs\n")

    return _run_file(new_args, resumed_from=run.run_id, announce=announce, wf=wf)


def cmd_cancel(args: argparse.Namespace) -> int:
    from chalicelib.service import runs

    with _existing_runtime(args) as rt:
        run = runs.stop(rt, args.run)
        print(f"run {run.run_id}: {run.state.value}")
        return 0


def cmd_runs(args: argparse.Namespace) -> int:
    from chalicelib.outputs.run_commands import check_action_options, run_action

    check_action_options(args)
    if args.action is not None:  # rm, gc
        with _existing_runtime(args) as rt:
            return run_action(args, rt)
    workdir = _workdir_of(args)
    if not _has_runs(workdir):  # no runs yet: nothing to list, and nothing to create
        if args.json:
            _print_json([])
        else:
            print(f"no runs here ({workdir} has none); run one with `updraft run FILE`")
        return 0
    from chalicelib.service import runs

    with _runtime(args) as rt:
        rows = runs.listing(rt, args.limit)
        if args.json:
            _print_json(rows)
            return 0
        if not rows:
            print(f"no runs here ({rt.workdir} has none); run one with `updraft run FILE`")
        for row in rows:
            done = sum(row["counts"].get(s.value, 0) for s in DONE_OK)
            created = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(row["created_at"]))
            print(f"{row['run_id']}  {row['state']:<10} {done:>6}/{row['task_count']:<6} {created}  {row['name']}")
        return 0


def cmd_cache(args: argparse.Namespace) -> int:
    from msgspec.structs import asdict

    from chalicelib.backends.local.runtime import default_workdir
    from chalicelib.cache.cas import ContentStore
    from chalicelib.cache.memo import MemoIndex

    root = os.path.join(os.path.abspath(args.workdir or default_workdir()), "cache")
    if args.action == "prune":
        if args.max_mb is None and not args.all:
            raise ConfigError("cache prune needs a size to keep: --max-mb N (keep at most N MB, the least "
                              "recently used objects go first) or --all (empty the cache)")
        if args.max_mb is not None and args.all:
            raise ConfigError("cache prune takes --max-mb N or --all, not both")
    if not os.path.isdir(root):  # nothing cached yet: say so, and create nothing
        if args.json:
            _print_json({"root": root, "objects": 0, "bytes": 0, "memoized_results": 0,
                         **({"entries": []} if args.action == "ls" else {})})
        else:
            print(f"0 object(s), 0.0 MB, 0 memoized result(s) in {root}")
        return 0
    cas = ContentStore(root)
    if args.action == "prune":
        removed = cas.evict(0 if args.all else int(args.max_mb * 1024 * 1024))
        print(f"removed {len(removed)} object(s), {sum(e.size for e in removed) / 1e6:.1f} MB; "
              f"{cas.total_bytes() / 1e6:.1f} MB left in {root}")
        return 0
    entries = sorted(cas.entries(), key=lambda e: -e.used_at)
    memo = MemoIndex(os.path.join(root, "memo")).count()
    if args.json:
        _print_json({"root": root, "objects": len(entries), "bytes": sum(e.size for e in entries),
                     "memoized_results": memo,
                     **({"entries": [asdict(e) for e in entries]} if args.action == "ls" else {})})
        return 0
    if args.action == "ls":
        for e in entries:
            used = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(e.used_at))
            print(f"{e.sha256[:16]}  {e.size:>12}  {used}")
    print(f"{len(entries)} object(s), {sum(e.size for e in entries) / 1e6:.1f} MB, "
          f"{memo} memoized result(s) in {root}")
    return 0


# ---- parser -------------------------------------------------------------------------------

CORE_COMMANDS = ("run", "validate", "show", "convert", "status", "logs", "resume", "cancel", "cache", "runs")


class _Skipped:
    """Stands in for the parser of a command `build_parser(only=...)` leaves out."""

    def __getattr__(self, name: str) -> Any:
        return lambda *args, **kwargs: None


def _at_least(least: int) -> Callable[[str], int]:
    """An argparse type: a whole number of at least `least`."""
    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
        if value < least:
            raise argparse.ArgumentTypeError(f"must be {least} or more, not {value}")
        return value
    return parse


def _non_negative(unit: str) -> Callable[[str], float]:
    """An argparse type: a finite number of `unit` (MB, days), 0 or more."""
    def parse(text: str) -> float:
        try:
            value = float(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"must be a number of {unit}, not {text!r}") from None
        if not value >= 0 or value == float("inf"):
            raise argparse.ArgumentTypeError(f"must be 0 or more {unit}, not {text}")
        return value
    return parse


_size_mb = _non_negative("MB")
_days = _non_negative("days")


# what --format takes (formats.format_names() loads every importer; a test keeps this in step)
FORMAT_NAMES = ("native", "hyperflow", "wfformat", "makeflow-json", "makeflow-jx", "makeflow", "cwl")
EMULATE_HELP = ("hold function and auto tasks to Lambda's limits and defaults (900 s, 1,024 MB, 512 MB of "
                "disk), as on AWS; without it a local task is bound only by the resources its file gives")
FORMAT_HELP = f"input format: {', '.join(FORMAT_NAMES)} (default: detected from content)"


def build_parser(only: str | None = None) -> argparse.ArgumentParser:
    """The whole command line; with `only` (one of CORE_COMMANDS) just that command's parser,
    which is what `main` builds for them: building every command's parser took ~10 ms of
    `updraft run`'s ~200 ms start-up."""
    from chalicelib import __version__

    parser = argparse.ArgumentParser(prog="updraft", description="Run scientific workflows, locally or on AWS.")
    parser.add_argument("--version", action="version", version=f"updraft {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)

    def add(name: str, help_: str, workdir: bool = True) -> argparse.ArgumentParser:
        if only is not None and name != only:
            return cast(argparse.ArgumentParser, _Skipped())
        p = sub.add_parser(name, help=help_, description=help_)
        if workdir:
            p.add_argument("--workdir", default=None, help="work dir (default ./.updraft or $UPDRAFT_HOME)")
        return p

    p = add("run", "run a workflow on the local runtime")
    p.add_argument("file")
    p.add_argument("--data", default=None, help="folder holding the workflow's external inputs")
    p.add_argument("--format", default=None, help=FORMAT_HELP)
    p.add_argument("--json", action="store_true", help="print one JSON object at the end")
    p.add_argument("--concurrency", type=_at_least(1), default=None, help="parallel tasks (default: cores)")
    p.add_argument("--no-cache", action="store_true", help="run every task; neither reuse nor keep results")
    p.add_argument("--emulate-lambda", action="store_true", help=EMULATE_HELP)
    p.add_argument("--objective", choices=["cost", "makespan"], default=None,
                   help="let the planner place and size every task for this objective")
    p.add_argument("--deadline", type=float, default=None, help="plan: the cheapest placement finishing in S seconds")
    p.add_argument("--budget", type=float, default=None, help="plan: the fastest placement costing at most D dollars")
    p.add_argument("--rerun", action="append", metavar="PATTERN",
                   help="always run tasks whose id or type matches (fnmatch; repeatable)")
    p.add_argument("--dry-run", action="store_true",
                   help="validate, then list each task (topological order) as cached or to run, and where; "
                        "run nothing, write nothing")
    p.add_argument("--replay", action="store_true", help="replay recorded runtimes and sizes instead of commands")
    p.add_argument("--time-scale", type=float, default=None, help="replay: multiply recorded runtimes")
    p.add_argument("--size-scale", type=float, default=None, help="replay: multiply recorded file sizes")
    _jx_options(p)
    p.add_argument("--job", default=None, help="CWL: the job file (the process's input values, YAML or JSON)")
    p.add_argument("--outdir", default=None, metavar="DIR",
                   help="copy the outputs here when the run succeeds: the workflow's publish rules resolved "
                        "here, else its final outputs (CWL: the output object's files; default: .)")
    p.add_argument("--overwrite", action="store_true",
                   help="let --outdir and publish rules replace existing files that differ (default: refuse)")
    p.set_defaults(func=cmd_run)

    p = add("validate", "check a workflow file; exit 0 if valid, 2 if not", workdir=False)
    p.add_argument("file")
    p.add_argument("--format", default=None, help=FORMAT_HELP)
    p.add_argument("--emulate-lambda", action="store_true",
                   help="check against Lambda's limits as AWS and `run --emulate-lambda` do (default: as `run` does)")
    _jx_options(p)
    p.set_defaults(func=cmd_validate)

    p = add("show", "describe a workflow: tasks, edges, levels, width, critical path, inputs; "
                    "--dag draws it", workdir=False)
    p.add_argument("file")
    p.add_argument("--format", default=None, help=FORMAT_HELP)
    p.add_argument("--json", action="store_true")
    p.add_argument("--dag", default=None, metavar="OUT",
                   help="write the DAG as a picture: OUT.svg, OUT.png (needs graphviz) or OUT.dot")
    p.add_argument("--dag-by", choices=["auto", "task", "type"], default="auto",
                   help="one node per task, or per task type (auto: per type above 120 tasks)")
    _jx_options(p)
    p.set_defaults(func=cmd_show)

    p = add("convert", "write a workflow (HyperFlow, WfCommons, Makeflow, ...) in another format",
            workdir=False)
    p.add_argument("file")
    p.add_argument("--to", default="native", choices=["native"], help="output format (default: native)")
    p.add_argument("--format", default=None, help=FORMAT_HELP)
    p.add_argument("-o", "--output", default=None, help="write here instead of standard output")
    _jx_options(p)
    p.set_defaults(func=cmd_convert)

    p = add("status", "a run and each of its tasks (default: the latest run)")
    p.add_argument("run", nargs="?")
    p.add_argument("--json", action="store_true")
    p.add_argument("--state", action="append", metavar="STATE",
                   help="only tasks in this state (e.g. FAILED; repeatable, or a comma list)")
    p.set_defaults(func=cmd_status)

    p = add("logs", "print a task's output (every attempt, or one); a deployed run's lines with --stage/--api")
    p.add_argument("run")
    p.add_argument("task", nargs="?")
    p.add_argument("--attempt", type=_at_least(1), default=None)
    p.add_argument("--tail", type=_at_least(0), default=None, metavar="N", help="only the last N lines of each log")
    from chalicelib.ui.commands import add_log_options

    add_log_options(p)
    p.set_defaults(func=cmd_logs)

    p = add("resume", "re-run what did not succeed, reuse what did, with the options the run was made "
                      "with; an edited workflow file runs as a new run reusing its unchanged tasks")
    p.add_argument("run")
    p.add_argument("--json", action="store_true")
    p.add_argument("--concurrency", type=_at_least(1), default=None, help="parallel tasks (default: the run's)")
    p.add_argument("--no-cache", dest="no_cache", action="store_const", const=True, default=None,
                   help="run every task; neither reuse nor keep results (default: as the run was made)")
    p.add_argument("--cache", dest="no_cache", action="store_const", const=False,
                   help="reuse and keep results, though the run was made with --no-cache")
    p.add_argument("--emulate-lambda", dest="emulate_lambda", action="store_const", const=True, default=None,
                   help=EMULATE_HELP + " (default: as the run was made)")
    p.add_argument("--no-emulate-lambda", dest="emulate_lambda", action="store_const", const=False,
                   help="do not hold tasks to Lambda's limits, though the run was made with --emulate-lambda")
    p.add_argument("--rerun", action="append", metavar="PATTERN", default=None,
                   help="always run tasks whose id or type matches (default: the run's patterns)")
    p.add_argument("--reload", dest="reload", action="store_const", const=True, default=None,
                   help="run the workflow file again (the default when it was edited since the run was made)")
    p.add_argument("--stored", dest="reload", action="store_const", const=False,
                   help="replay the run as submitted (its stored spec), even if its file was edited")
    p.add_argument("--dry-run", action="store_true",
                   help="say which tasks would be kept, reused from the cache or run again; run nothing")
    from chalicelib.outputs.commands import add_options

    add_options(p)  # --outdir, --overwrite
    p.set_defaults(func=cmd_resume)

    p = add("cancel", "cancel a run (stops its running tasks)")
    p.add_argument("run")
    p.set_defaults(func=cmd_cancel)

    p = add("cache", "the dependency cache: ls (objects), du (size), prune (to a size)")
    p.add_argument("action", choices=["ls", "du", "prune"])
    p.add_argument("--max-mb", type=_size_mb, default=None, metavar="N",
                   help="prune: keep at most N MB (least recently used go first); prune needs this or --all")
    p.add_argument("--all", action="store_true", help="prune: empty the cache")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_cache)

    p = add("runs", "list runs, newest first; `runs rm RUN...` deletes runs, `runs gc` old ones")
    p.add_argument("action", nargs="?", choices=["rm", "gc"], help="rm: delete the named runs; gc: delete old runs")
    p.add_argument("runs", nargs="*", metavar="RUN", help="rm: the runs to delete (`latest`: the newest)")
    p.add_argument("--limit", type=_at_least(0), default=50)
    p.add_argument("--json", action="store_true")
    p.add_argument("--keep", type=_at_least(0), default=None, metavar="N", help="gc: keep the N newest runs")
    p.add_argument("--older-than", type=_days, default=None, metavar="DAYS",
                   help="gc: delete runs started more than DAYS ago")
    p.add_argument("--dry-run", action="store_true", help="rm, gc: list what would be deleted, delete nothing")
    p.set_defaults(func=cmd_runs)
    if only in CORE_COMMANDS:
        return parser
    from chalicelib.ui.commands import add_commands

    add_commands(sub, add)  # report, ui, submit, watch (chalicelib/ui/commands.py)
    from chalicelib.planner.commands import add_commands as add_planner_commands

    add_planner_commands(sub, add)  # plan, simulate (chalicelib/planner/commands.py)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    if not argv:  # `updraft` alone asks what it can do: the help, and success (it is not a mistake)
        build_parser().print_help()
        return 0
    parser = build_parser(only=argv[0] if argv and argv[0] in CORE_COMMANDS else None)
    args = parser.parse_args(argv)
    try:
        return int(args.func(args))
    except UpdraftError as exc:
        sys.stderr.write(f"updraft: {exc}\n")
        return exc.exit_code
    except KeyboardInterrupt:
        sys.stderr.write("updraft: interrupted\n")
        return 1
    except BrokenPipeError:
        return 1
    except OSError as exc:
        if exc.errno == errno.EIO:  # its terminal was closed (SIGHUP): the run was cancelled cleanly
            return 1
        raise


if __name__ == "__main__":
    sys.exit(main())
