"""The local runtime: the coordinator driven by a single-threaded event loop, with SQLite
state, filesystem blobs, a function pool and a container pool. No account, no network.

Work dir layout (default ./.updraft, env UPDRAFT_HOME):
    state.db                      SQLite (WAL): runs, tasks, counters
    blobs/runs/<run>/workflow.json  the run's spec (native format)
    blobs/runs/<run>/data/<path>    inputs and every task's outputs
    blobs/runs/<run>/logs/<task>.<attempt>.log
    sandbox/                      per-attempt sandboxes (removed when the attempt ends)
    locks/<run>.lock              held (flock) by the process executing the run

Killing the process at any moment loses nothing: `resume` re-runs what did not succeed.
"""

from __future__ import annotations

import contextlib
import fcntl
import fnmatch
import heapq
import os
import selectors
import signal
import time
from collections.abc import Callable, Iterator, Mapping
from typing import Any

from msgspec import Struct, field
from msgspec.structs import replace

from chalicelib.backends.local.container_pool import ContainerPool
from chalicelib.backends.local.fs_blobs import FsBlobStore
from chalicelib.backends.local.function_pool import STOP_SIGNALS, FunctionPool, check_concurrency
from chalicelib.backends.local.sqlite_state import SqliteStateStore
from chalicelib.cache.cas import ContentStore
from chalicelib.cache.memo import MemoIndex
from chalicelib.cache.stage import TaskCache
from chalicelib.engine import events as ev
from chalicelib.engine.coordinator import Coordinator, CoordinatorConfig
from chalicelib.engine.records import RunRecord
from chalicelib.engine.spec import SpecCache
from chalicelib.engine.states import IN_FLIGHT, Reason, RunState, TaskState
from chalicelib.errors import MissingInputsError, RunBusyError, StateConflictError, WorkdirError
from chalicelib.runner.affinity import LoopPin
from chalicelib.runner.execute import TaskRequest
from chalicelib.runner.keys import data_key
from chalicelib.runner.procs import is_subreaper, own_children, run_marker, set_subreaper, sweep_orphans
from chalicelib.runner.trees import local_tree
from chalicelib.service.runtime import Request, Resolved
from chalicelib.workflow.graph import external_inputs
from chalicelib.workflow.limits import FUNCTION, PlacementLimits, local_resources, machine_memory_mb
from chalicelib.workflow.model import Dep, Task, Workflow
from chalicelib.workflow.validate import validate


def _holds_a_file(folder: str) -> bool:
    return any(files for _, _, files in os.walk(folder))


ProgressFn = Callable[[dict[str, int], int], None]


def default_workdir() -> str:
    return os.environ.get("UPDRAFT_HOME", os.path.join(os.getcwd(), ".updraft"))


def workdir_path(workdir: str | None) -> str:
    """The work dir's absolute path (default: UPDRAFT_HOME, else ./.updraft); WorkdirError when
    something other than a folder is there."""
    path = os.path.abspath(workdir or default_workdir())
    if os.path.exists(path) and not os.path.isdir(path):
        raise _unusable(path, "it is not a folder")
    return path


def _unusable(path: str, why: str) -> WorkdirError:
    return WorkdirError(f"work dir {path} cannot be used: {why}; pass --workdir DIR or set UPDRAFT_HOME")


def input_sources(workflow: Workflow, data_dir: str | None) -> dict[str, str]:
    """Local file or folder for each external input; raises MissingInputsError naming every gap."""
    declared = {f.path: f.source for f in workflow.inputs}
    folders = {p for t in workflow.tasks for p in t.folders}
    base = data_dir or workflow.base_dir or os.getcwd()
    found: dict[str, str] = {}
    missing: list[str] = []
    for path in external_inputs(workflow):
        source = declared.get(path)
        if source is not None and "://" in source and not source.startswith("file://"):
            missing.append(f"{path} (source {source}: remote sources need the AWS runtime)")
            continue
        if source is not None:
            local = source[len("file://"):] if source.startswith("file://") else source
            local = local if os.path.isabs(local) else os.path.join(workflow.base_dir or os.getcwd(), local)
        else:
            local = os.path.join(base, path)
        if path in folders and os.path.isfile(local):
            missing.append(f"{path} (declared a folder with a trailing '/', but {local} is a file)")
        elif os.path.isdir(local) and not _holds_a_file(local):
            missing.append(f"{path} ({local} is an empty folder; a folder as data is its files)")
        elif os.path.isfile(local) or os.path.isdir(local):  # a folder is data too (runner/trees.py)
            found[path] = os.path.abspath(local)
        else:
            missing.append(f"{path} (looked for {local})")
    if missing:
        raise MissingInputsError(missing, data_dir or base)
    return found


def resolve_deps(workflow: Workflow) -> Workflow:
    """Make each task's local dependency sources absolute; refuse missing ones (MissingInputsError)."""
    base = workflow.base_dir or os.getcwd()
    missing: list[str] = []
    tasks = []
    for task in workflow.tasks:
        resolved = []
        for dep in task.deps:
            if dep.is_uri:
                missing.append(f"{dep.spelling} (task {task.id}: remote dependencies need the AWS runtime)")
                continue
            full = dep.source if os.path.isabs(dep.source) else os.path.join(base, dep.source)
            if not os.path.exists(full):
                missing.append(f"{dep.spelling} (task {task.id}: looked for {full})")
            resolved.append(Dep(dep.name, os.path.abspath(full)))  # named: the stored spec says which
        tasks.append(replace(task, deps=tuple(resolved)) if task.deps else task)
    if missing:
        raise MissingInputsError(missing, base)
    return replace(workflow, tasks=tuple(tasks))


def may_reuse(task: Task, patterns: tuple[str, ...]) -> bool:
    """Whether a memoized result may stand in for the task: False when a --rerun pattern
    (fnmatch) names its id or type."""
    return not any(fnmatch.fnmatchcase(task.id, p) or fnmatch.fnmatchcase(task.task_type, p) for p in patterns)


class RuntimeOptions(Struct):
    concurrency: int = field(default_factory=lambda: os.cpu_count() or 2)
    container_workers: int = field(default_factory=lambda: os.cpu_count() or 2)
    coordinator: CoordinatorConfig = field(default_factory=CoordinatorConfig)
    progress_every_s: float = 0.1
    memoize: bool = True  # reuse results of tasks whose inputs, command and tools are unchanged
    rerun: tuple[str, ...] = ()  # task id or type patterns that always run (fnmatch)
    dependency_cache: bool = True  # stage inputs and deps through the content store
    cache_max_mb: int = field(default_factory=lambda: int(os.environ.get("UPDRAFT_CACHE_MAX_MB", "20480")))
    # the process runs nothing but this engine (the CLI): every child it did not start itself is
    # an orphan of a task, even one that cleared its environment (see FunctionPool.sweep_all)
    sole_process: bool = False
    # hold function and auto tasks to Lambda's limits and defaults (900 s, 1,024 MB, 512 MB of
    # disk), as the cloud does; without it a local task is bound only by what its file gives
    # (a task whose own placement is 'function' keeps Lambda's limits): see workflow/limits.py
    emulate_lambda: bool = False


class LocalRuntime:
    def __init__(self, workdir: str | None = None, options: RuntimeOptions | None = None,
                 starter: Callable[[str], object] | None = None) -> None:
        self.options = options or RuntimeOptions()
        check_concurrency(self.options.concurrency)  # before anything is written
        check_concurrency(self.options.container_workers)
        self.workdir = workdir_path(workdir)
        self.starter = starter
        try:
            os.makedirs(os.path.join(self.workdir, "locks"), exist_ok=True)
        except OSError as exc:
            raise _unusable(self.workdir, f"{exc.strerror or exc} ({exc.filename})") from None
        self.store = SqliteStateStore(os.path.join(self.workdir, "state.db"))
        self.blob_root = os.path.join(self.workdir, "blobs")
        self.blobs = FsBlobStore(self.blob_root)
        self.sandbox_root = os.path.join(self.workdir, "sandbox")
        self.specs = SpecCache.from_blobs(self.blobs)
        self.coordinator = Coordinator(self.store, self.specs, config=self.options.coordinator)
        self.cache_root = os.path.join(self.workdir, "cache")
        self.task_cache: TaskCache | None = None
        if self.options.dependency_cache:
            memo = MemoIndex(os.path.join(self.cache_root, "memo")) if self.options.memoize else None
            self.task_cache = TaskCache(ContentStore(self.cache_root), memo)

    def reuse(self, task: Task) -> bool:
        """False when --rerun names the task (by id or type)."""
        return may_reuse(task, self.options.rerun)

    def trim_cache(self) -> None:
        if self.task_cache is not None:
            self.task_cache.cas.evict(self.options.cache_max_mb * 1024 * 1024)

    def close(self) -> None:
        self.store.close()

    def __enter__(self) -> LocalRuntime:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ---- submit -------------------------------------------------------------------------

    def submit(
        self, workflow: Workflow, data_dir: str | None = None, source: str | None = None, validated: bool = False,
    ) -> RunRecord:
        """Validate (unless the caller just did), check inputs, stage them, store the run
        (chalicelib/service/submission.py). Writes nothing if any step fails."""
        from chalicelib.service.submission import submit

        return submit(self, self.request(workflow, data_dir, source, validated))

    # ---- the run service's Runtime (chalicelib/service/runtime.py) --------------------------

    tracks_owner = True  # a RUNNING run whose lock is free has no live executor: resume takes it over

    def clock(self) -> float:
        return time.time()

    def function_limits(self) -> PlacementLimits:
        return FUNCTION  # where an `auto` task starts, as in the cloud (what binds it locally: emulate_lambda)

    def request(self, workflow: Workflow, data_dir: str | None = None, source: str | None = None,
                validated: bool = False, name: str | None = None) -> Request:
        """A submission of a loaded workflow (validated here unless the caller just did)."""
        if not validated:
            validate(workflow, source, lambda_limits=self.options.emulate_lambda)
        return Request(workflow, data_dir, source, {"data_dir": data_dir, "source": source}, name)

    def read_request(self, body: Any, raw: bytes | None = None) -> Request:
        from chalicelib.backends.local.requests import read_request

        return read_request(self, body)

    def resolve_inputs(self, workflow: Workflow, data: str | None, source: str | None) -> Resolved:
        if any(t.deps for t in workflow.tasks):
            workflow = resolve_deps(workflow)
        return Resolved(workflow, input_sources(workflow, data))

    def stage_inputs(self, run_id: str, staged: Mapping[str, str]) -> None:
        for path, local in staged.items():  # copies: the user's files are never linked in
            if os.path.isdir(local):
                for rel in local_tree(local):
                    self.blobs.put_file(data_key(run_id, f"{path}/{rel}"), os.path.join(local, rel))
            else:
                self.blobs.put_file(data_key(run_id, path), local)

    def start(self, run_id: str) -> None:
        """Hand the run to the starter this runtime was composed with (backends/local/compose.py:
        an executor process for the local server); without one the caller executes it."""
        if self.starter is not None:
            self.starter(run_id)

    def owner(self, run_id: str) -> int | None:
        return self.owner_pid(run_id)

    # ---- execute ------------------------------------------------------------------------

    @contextlib.contextmanager
    def owning(self, run_id: str) -> Iterator[None]:
        """Hold the run's lock while executing it; fails if another live process holds it."""
        path = os.path.join(self.workdir, "locks", f"{run_id}.lock")
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                pid = os.pread(fd, 32, 0).decode().strip() or "?"
                raise RunBusyError(f"run {run_id} is being executed by process {pid}; "
                                   f"`updraft cancel {run_id}` stops it") from None
            os.ftruncate(fd, 0)
            os.pwrite(fd, str(os.getpid()).encode(), 0)
            yield
        finally:
            os.close(fd)

    def owner_pid(self, run_id: str) -> int | None:
        """PID of the live process executing the run, if any."""
        path = os.path.join(self.workdir, "locks", f"{run_id}.lock")
        if not os.path.exists(path):
            return None
        fd = os.open(path, os.O_RDONLY)
        try:
            try:
                fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
            except BlockingIOError:
                text = os.pread(fd, 32, 0).decode().strip()
                return int(text) if text.isdigit() else None
            fcntl.flock(fd, fcntl.LOCK_UN)
            return None
        finally:
            os.close(fd)

    def run(self, run_id: str, progress: ProgressFn | None = None) -> RunRecord:
        with self.owning(run_id):
            try:
                return _Loop(self, run_id, progress).run()
            finally:
                self.trim_cache()

    def resume_tasks(self, run_id: str, token: str) -> None:
        """The run service's resume (local server): its tasks reset here, then the executor."""
        self.reset_tasks(run_id, token)
        self.start(run_id)

    def reset_tasks(self, run_id: str, token: str) -> None:
        """Every window of a resume's task resets here (as `cancel` does its windows); the last
        window's Start is left to whoever executes the run next."""
        todo: list[ev.Event] = [ev.Resume(run_id, token)]
        while todo:
            out = self.coordinator.handle(todo)
            todo = [i.event for i in out if isinstance(i, ev.Schedule) and isinstance(i.event, ev.Resume)]

    def resume(self, run_id: str, progress: ProgressFn | None = None) -> RunRecord:
        """`updraft resume`: reset what did not succeed and execute the run in this process."""
        from chalicelib.service.guards import begin_resume_run

        with self.owning(run_id):  # the guard: RunBusyError while another process executes it
            self.reset_tasks(run_id, begin_resume_run(self, run_id).token)
            try:
                return _Loop(self, run_id, progress).run()
            finally:
                self.trim_cache()

    def cancel(self, run_id: str) -> RunRecord:
        """Cancel a run: signal its live owner, or cancel it in the store directly."""
        pid = self.owner_pid(run_id)
        if pid is not None:
            os.kill(pid, signal.SIGINT)
            deadline = time.monotonic() + 30
            while time.monotonic() < deadline and self.owner_pid(run_id) is not None:
                time.sleep(0.05)
            return self.store.get_run(run_id)
        todo: list[ev.Event] = [ev.Cancel(run_id)]
        while todo:  # every window of the cancel here, as nobody else will handle the next one
            out = self.coordinator.handle(todo)
            todo = [i.event for i in out if isinstance(i, ev.Schedule) and isinstance(i.event, ev.Cancel)]
        return self.store.get_run(run_id)


class _Loop:
    """One run's event loop: coordinator steps, pool callbacks, timers, signals."""

    def __init__(self, rt: LocalRuntime, run_id: str, progress: ProgressFn | None) -> None:
        self.rt = rt
        self.run_id = run_id
        self.progress = progress
        self.events: list[ev.Event] = []
        self.timers: list[tuple[float, int, ev.Event]] = []
        self.seq = 0
        self.deferred_since: float | None = None
        self.defer_s = 0.05
        self.defer_max = 64
        self.finished: str | None = None
        self.interrupted = False
        self.selector = selectors.DefaultSelector()
        self.pin = LoopPin()
        opts, emit = rt.options, self._emit
        self.functions = FunctionPool(rt.blobs, rt.sandbox_root, opts.concurrency, self.selector, emit,
                                      cache=rt.task_cache)
        worker_args = ["--cache", rt.cache_root] if rt.task_cache is not None else []
        if rt.task_cache is not None and rt.task_cache.memo is None:
            worker_args.append("--no-memo")
        self.containers = ContainerPool(rt.blob_root, rt.sandbox_root, opts.container_workers, self.selector, emit,
                                        worker_args)
        # content hashes of the run's files, from the producers' results: they let the cache
        # and memoization recognise inputs without reading them
        self.hashes: dict[str, str] = {}
        self.machine_mb = machine_memory_mb()
        for rec in rt.store.iter_tasks(run_id, [TaskState.SUCCEEDED, TaskState.CACHED]):
            if rec.result is not None:
                self.hashes.update(rec.result.outputs)

    def _emit(self, event: ev.Event) -> None:
        if isinstance(event, ev.TaskSucceeded):
            self.hashes.update(event.result.outputs)
        self.events.append(event)

    def run(self) -> RunRecord:
        rfd, wfd = os.pipe()
        os.set_blocking(rfd, False)
        os.set_blocking(wfd, False)
        self.selector.register(rfd, selectors.EVENT_READ, (self._on_signal, rfd))
        old_wakeup = signal.set_wakeup_fd(wfd)
        # Ctrl-C, kill, and a closed terminal (SIGHUP) all cancel the run cleanly: never a
        # RUNNING run left with no process executing it. A signal ignored when the run began
        # stays ignored (`nohup updraft run ...` outlives its terminal, as nohup means).
        old = {sig: signal.signal(sig, self._interrupt) for sig in STOP_SIGNALS
               if signal.getsignal(sig) is not signal.SIG_IGN}
        # the loop spawns tasks itself (FunctionPool._launch_inline): what they leave running
        # comes back to it, and so do the tasks of a slot killed by an interrupt
        was_subreaper = is_subreaper()
        set_subreaper()
        before = set(own_children())  # not this run's
        self.functions.sweep_all = self.rt.options.sole_process
        self.functions.others = lambda: before | self.containers.pids()
        try:
            self.events.append(ev.Start(self.run_id))
            with self.pin:  # the loop stays on one CPU; what it starts gets every CPU
                self._loop()
        finally:
            for sig, handler in old.items():
                signal.signal(sig, handler)
            signal.set_wakeup_fd(old_wakeup)
            self.functions.kill_all()
            self.containers.shutdown()
            # what this run's tasks left running (the slots and workers are gone by now)
            sweep_orphans(before, None if self.rt.options.sole_process else run_marker(self.run_id))
            if not was_subreaper:
                set_subreaper(False)
            self.selector.close()
            os.close(rfd)
            os.close(wfd)
        return self.rt.store.get_run(self.run_id)

    def _interrupt(self, _signum: int, _frame: object) -> None:
        """SIGINT / SIGTERM / SIGHUP: the pools start nothing more from this moment (the Cancel that
        records it in the store follows at the loop's next turn)."""
        self.interrupted = True
        self.functions.halt()
        self.containers.halt()

    def _cancel_position(self) -> int:
        """Where the interrupt's Cancel goes among the queued events: before the first failure
        the interrupt itself caused (an attempt its halt killed reports CANCELLED), so those
        tasks end CANCELLED with the run, not FAILED; what finished before it stays ahead."""
        for i, e in enumerate(self.events):
            if isinstance(e, ev.TaskFailed) and e.reason == Reason.CANCELLED.value:
                return i
        return len(self.events)

    def _on_signal(self, fd: int) -> None:
        with contextlib.suppress(BlockingIOError):
            os.read(fd, 512)

    def _defer(self, now: float) -> bool:
        """Hold completions back for a moment while every function slot already has a task
        waiting to start next: the coordinator then handles them in one transaction (a commit
        per few dozen tasks, not per task) without leaving a slot idle. Bounded in time and
        count; a kill -9 meanwhile loses only the record of those completions, and `resume`
        re-runs those tasks."""
        if (self.interrupted or self.finished is not None or len(self.events) >= self.defer_max
                or self.functions.waiting < self.functions.slots):
            return False
        if self.deferred_since is None:
            self.deferred_since = now
        return now - self.deferred_since < self.defer_s

    def _busy(self) -> bool:
        return bool(self.functions.busy or self.containers.busy)

    def _apply(self, instructions: list[ev.Launch | ev.Schedule | ev.Kill | ev.RunFinished]) -> None:
        for ins in instructions:
            if isinstance(ins, ev.Launch):
                task = self.rt.specs.get(ins.run_id).tasks[ins.task_id]
                if ins.resources:  # an escalated retry: more memory or disk than the spec's
                    task = replace(task, resources=task.resources.grown(ins.resources))
                res = local_resources(task, self.rt.options.emulate_lambda, self.machine_mb)
                if res != task.resources:  # not Lambda-bound: what the file does not give is no limit
                    task = replace(task, resources=res)
                known = {p: self.hashes[p] for p in task.inputs if p in self.hashes}
                req = TaskRequest(ins.run_id, ins.task_id, ins.attempt, task, known, self.rt.reuse(task))
                if ins.placement == "function":
                    self.functions.submit(req)
                else:
                    self.containers.submit(ins, req)
            elif isinstance(ins, ev.Schedule):
                self.seq += 1
                heapq.heappush(self.timers, (time.monotonic() + ins.delay_s, self.seq, ins.event))
            elif isinstance(ins, ev.Kill):
                self.functions.kill(ins.run_id, ins.task_id, ins.attempt)
                self.containers.kill(ins.run_id, ins.task_id, ins.attempt)
            elif isinstance(ins, ev.RunFinished) and ins.run_id == self.run_id:
                self.finished = ins.state

    def _repair_stall(self) -> None:
        """Nothing runs, nothing is due, yet the run is not finished: find out why."""
        store = self.rt.store
        run = store.get_run(self.run_id)
        if run.state is not RunState.RUNNING:
            self.finished = run.state.value
            return
        orphans = store.list_tasks(self.run_id, IN_FLIGHT)
        ready = store.list_tasks(self.run_id, [TaskState.READY])
        if not orphans and not ready:
            raise StateConflictError(
                f"run {self.run_id} stalled with counts {store.counts(self.run_id)}: no task can run. "
                "This is a bug; `updraft resume` retries what did not succeed.", run)
        self.events.extend(ev.LeaseExpired(self.run_id, r.task_id, r.attempt) for r in orphans)
        if ready:
            self.events.append(ev.Start(self.run_id))

    def _loop(self) -> None:
        next_progress = 0.0
        cancel_sent = False
        idle_repairs = 0
        while True:
            if self.interrupted and not cancel_sent:
                cancel_sent = True
                self.events.insert(self._cancel_position(), ev.Cancel(self.run_id))
            now = time.monotonic()
            self.pin.tick(now)
            if self.events and not self._defer(now):
                # a bounded batch per transaction; the slots' completions are served in between
                batch, self.events[:] = self.events[:self.defer_max], self.events[self.defer_max:]
                self._apply(self.rt.coordinator.handle(batch))
                idle_repairs = 0
                self.deferred_since = None
            while self.timers and self.timers[0][0] <= now:
                self.events.append(heapq.heappop(self.timers)[2])
            if self.progress is not None and now >= next_progress:
                next_progress = now + self.rt.options.progress_every_s
                self.progress(self.rt.store.counts(self.run_id), 0)
            if self.events and self.deferred_since is None and not self.functions.busy:
                continue
            if self.finished is not None and not self._busy():
                return
            if not self._busy() and not self.timers and self.finished is None:
                idle_repairs += 1
                if idle_repairs > 3:
                    raise StateConflictError(f"run {self.run_id} is not progressing", None)
                self._repair_stall()
                continue
            timeout = 0.5
            if self.timers:
                timeout = min(timeout, max(0.0, self.timers[0][0] - now))
            check = self.functions.next_check_in()
            if check is not None:
                timeout = min(timeout, check)
            if self.progress is not None:
                timeout = min(timeout, max(0.0, next_progress - now))
            if self.deferred_since is not None:
                timeout = min(timeout, max(0.0, self.deferred_since + self.defer_s - now))
            elif self.events:
                timeout = 0.0  # more events to handle: only collect what finished meanwhile
            for key, _mask in self.selector.select(timeout):
                callback, arg = key.data
                callback(arg)
            self.functions.check_limits()
