"""Execute one task attempt, enforcing its limits, and turn the result into an engine event.

`Attempt` is split into prepare / start / check / finish so the local function pool can run
many attempts from one thread; `run_task` strings them together for the task function and
the Fargate worker.

Limits: the timeout is wall time from start; memory is the resident set of the task's whole
process tree, sampled while it runs and checked against the kernel's peak for the main
process at exit; disk is the sandbox's size (TMPDIR points inside it, like Lambda's /tmp).
"""

from __future__ import annotations

import contextlib
import logging
import os
import select
import shutil
import signal
import stat
import time
from collections.abc import Callable, Collection, Mapping
from typing import Any

from msgspec import Struct, field
from msgspec.structs import replace

from chalicelib.attempt import AttemptResult, Reason, TaskFailed, TaskSucceeded
from chalicelib.cache.copying import copy_hashing
from chalicelib.cache.memo import image_id, memo_key, usable_record
from chalicelib.cache.runner_deps import RunnerDeps
from chalicelib.cache.stage import TaskCache, dep_hashes
from chalicelib.cwl import hook as cwl_hook
from chalicelib.engine.ports import BlobStore
from chalicelib.runner import affinity
from chalicelib.runner.keys import data_key, log_key
from chalicelib.runner.procs import attempt_marker, dir_size_bytes, orphans_rss_kb, sweep_orphans, tree_rss_kb
from chalicelib.runner.sandbox import Sandbox, StageError
from chalicelib.runner.spawn import reap_process
from chalicelib.runner.spawn import spawn as spawn_process
from chalicelib.workflow.model import Task

LOG_TAIL_BYTES = 4096
DISK_CHECK_EVERY_S = 2.0


log = logging.getLogger("updraft.runner")


def runner_deps_of(sandbox: Sandbox, workroot: str) -> RunnerDeps:
    """The runner a sandbox belongs to: a reusable slot (local function pool) is one; a
    per-attempt sandbox belongs to its process (one task at a time)."""
    if sandbox.reusable:
        return RunnerDeps(sandbox.root + ".deps")
    return RunnerDeps.for_process(workroot)


class Proc(Struct):
    pid: int
    returncode: int | None = None


_WHICH: dict[tuple[str, str], str] = {}


def _resolve(program: str, path_var: str) -> str:
    """The executable for argv[0], searched on the task's own PATH (cached)."""
    if "/" in program:
        return program
    key = (program, path_var)
    found = _WHICH.get(key)
    if found is None:
        found = shutil.which(program, path=path_var)
        if found is None:
            raise FileNotFoundError(f"{program!r} not found on PATH ({path_var})")
        _WHICH[key] = found
    return found


class Launchable(Struct, frozen=True):
    """A process to spawn: `env` as "NAME=value" entries."""

    exe: str
    argv: list[str]
    env: list[bytes]
    cwd: str
    log_path: str


class TaskRequest(Struct, frozen=True):
    """One attempt to run. `input_hashes` are the content hashes of inputs that the
    producers reported (they let the cache and memoization skip work); `reuse` False forces
    execution even when a memoized result exists (`--rerun`)."""

    run_id: str
    task_id: str
    attempt: int
    task: Task
    input_hashes: Mapping[str, str] = field(default_factory=dict)
    reuse: bool = True


class TaskOutcome(Struct, frozen=True):
    event: TaskSucceeded | TaskFailed
    started_at: float

    @property
    def ok(self) -> bool:
        return isinstance(self.event, TaskSucceeded)


_SET_PER_TASK = (b"TMPDIR", b"UPDRAFT_RUN_ID", b"UPDRAFT_TASK_ID", b"UPDRAFT_ATTEMPT")
_WITHHELD = (b"UPDRAFT_MEMO_KEY",)  # the runner's memo secret (cache/memo.py) never reaches a task


def _task_env(req: TaskRequest, sandbox: Sandbox, base: Mapping[Any, Any]) -> list[bytes]:
    """The task's environment as the "NAME=value" entries posix_spawn takes: the base's
    entries (encoded once per EncodedEnv) less the ones set here, then the task's own."""
    encoded = base if isinstance(base, EncodedEnv) else EncodedEnv.of(base)
    extra = {os.fsencode(k): os.fsencode(v) for k, v in req.task.env.items()}
    extra[b"TMPDIR"] = os.fsencode(sandbox.tmp_path)
    extra[b"UPDRAFT_RUN_ID"] = req.run_id.encode()
    extra[b"UPDRAFT_TASK_ID"] = os.fsencode(req.task_id)
    extra[b"UPDRAFT_ATTEMPT"] = str(req.attempt).encode()
    entries = encoded.entries() if len(extra) == len(_SET_PER_TASK) else encoded.entries(extra)
    return [*entries, *(k + b"=" + v for k, v in extra.items())]


class EncodedEnv(dict[bytes, bytes]):
    """An environment encoded once (for pools that spawn thousands of tasks)."""

    _entries: list[bytes] | None = None

    @classmethod
    def of(cls, env: Mapping[str, str]) -> EncodedEnv:
        return cls((os.fsencode(k), os.fsencode(v)) for k, v in env.items())

    def entries(self, overridden: Mapping[bytes, bytes] | None = None) -> list[bytes]:
        """"NAME=value" for each variable but those set per task (and `overridden`)."""
        if overridden is not None:
            return [k + b"=" + v for k, v in self.items() if k not in overridden and k not in _WITHHELD]
        if self._entries is None:
            self._entries = [k + b"=" + v for k, v in self.items() if k not in _SET_PER_TASK and k not in _WITHHELD]
        return self._entries


def _over_disk(used: int, limit: int, task: Task | None = None) -> str:
    return f"wrote {used >> 20} MB, over its disk limit of {limit >> 20} MB" + raise_hint(task, "disk_mb", limit >> 20)


_FUNCTION_CAPS = {"timeout_s": 900.0, "memory_mb": 10_240.0, "disk_mb": 10_240.0}  # limits.FUNCTION's


def raise_hint(task: Task | None, name: str, limit: float) -> str:
    """What to change after a task ran out of a resource: the field to raise, or, at Lambda's
    own cap for a function task, the placement."""
    if task is None:
        return ""
    if task.placement.value == "function" and limit >= _FUNCTION_CAPS[name]:
        return (f"; that is Lambda's most for a function: set the task's placement to 'container' or 'auto' "
                f"to give it more (and raise resources.{name})")
    return f"; raise the task's resources.{name} (or defaults.resources.{name}) in the workflow file"


def argv_of(task: Task) -> list[str]:
    if task.shell is not None:
        return ["/bin/sh", "-c", task.shell]
    if cwl_hook.is_cwl(task.command):  # a CWL step: its command line is built when it starts
        return cwl_hook.argv(task.command)
    return list(task.command)


class Attempt(Struct):
    """One attempt from sandbox creation to its outcome."""

    req: TaskRequest
    sandbox: Sandbox
    bytes_in: int
    timeout_s: float
    memory_kb: int
    disk_bytes: int
    base_env: Mapping[Any, Any]
    proc: Proc | None = None
    pidfd: int = -1
    spawner: int = 0  # the process that spawned it, whose children its orphans become (0: this one)
    keep: Collection[int] = ()  # children of this process that are not the task's (a pool's slots)
    sweep_all: bool = False  # every child of this process but `keep` is the task's orphan (see reap)
    unpin_tree: bool = False  # spawned by a pinned loop or slot: widen its tree at the first sample
    started_at: float = 0.0
    deadline: float = 0.0
    peak_rss_kb: int = 0
    kill_reason: str | None = None
    kill_detail: str = ""
    next_disk_check: float = 0.0
    stage_error: StageError | None = None
    cache: TaskCache | None = None
    memo_key: str | None = None
    restored: dict[str, str] | None = None  # outputs published from a memoized result

    @classmethod
    def prepare(
        cls, req: TaskRequest, blobs: BlobStore, workroot: str,
        sources: Mapping[str, str] | None = None, base_env: Mapping[Any, Any] | None = None,
        sandbox: Sandbox | None = None, cache: TaskCache | None = None,
    ) -> Attempt:
        res = req.task.resources
        sandbox = sandbox or Sandbox.create(workroot, req.run_id, req.task_id, req.attempt)
        att = cls(
            req=req, sandbox=sandbox, bytes_in=0, timeout_s=res.timeout_s,
            memory_kb=res.memory_mb * 1024, disk_bytes=res.disk_mb * 1024 * 1024,
            base_env=os.environ if base_env is None else base_env,
        )
        att.cache = cache.fork() if cache is not None else None
        if att.cache is not None and req.task.deps:  # big read-only deps: one copy per runner
            att.cache.runner_deps = runner_deps_of(sandbox, workroot)
        try:
            att._stage(blobs, sources)
        except StageError as exc:
            att.stage_error = exc
        except BaseException:
            if att.cache is not None:
                att.cache.release()
            raise
        return att

    def _stage(self, blobs: BlobStore, sources: Mapping[str, str] | None) -> None:
        """Stage inputs and deps; with memoization, first try to reuse a stored result."""
        req, cache, task = self.req, self.cache, self.req.task
        if cache is None:
            self.bytes_in, _ = self.sandbox.stage_in(blobs, req.run_id, task.inputs, sources, None,
                                                     req.input_hashes, task.folders)
            self.bytes_in += self.sandbox.copy_deps(task.deps)
            return
        cache.make_room(task.resources.disk_mb * 1024 * 1024)  # a budgeted tier: room for this task
        known = dict(req.input_hashes)
        deps: dict[str, str] = {}
        memoize = cache.memo is not None and bool(task.outputs)  # nothing to reuse without outputs
        if memoize and req.reuse and all(p in known for p in task.inputs):
            deps = dep_hashes(task.deps)  # hashing local deps is cheap next to running the task
            self.memo_key = memo_key(task, {p: known[p] for p in task.inputs}, deps, self._image())
            if self._reuse(blobs):
                return
        self.bytes_in, hashes = self.sandbox.stage_in(blobs, req.run_id, task.inputs, sources, cache, known,
                                                          task.folders)
        deps = self.sandbox.stage_deps(task.deps, cache) if task.deps else {}
        if memoize:
            known.update(hashes)
            self.memo_key = memo_key(task, {p: known[p] for p in task.inputs if p in known}, deps, self._image())
            cache.stats.memo = "miss" if req.reuse else "rerun"
            if req.reuse:
                self._reuse(blobs)

    def _reuse(self, blobs: BlobStore) -> bool:
        """Publish a memoized result for `memo_key` if there is one whose objects are all cached."""
        cache, run_id = self.cache, self.req.run_id
        assert cache is not None and cache.memo is not None and self.memo_key is not None
        hit = cache.memo.get(self.memo_key)
        if hit is None or not usable_record(hit, self.req.task.outputs):
            return False
        if cache.restore(hit["outputs"], blobs, lambda p: data_key(run_id, p)) is None:
            return False
        self.restored = dict(hit["outputs"])
        cache.stats.memo = "hit"
        return True

    def _image(self) -> str:
        path = self.base_env.get(b"PATH") if isinstance(self.base_env, EncodedEnv) else self.base_env.get("PATH")
        return image_id(self.req.task, os.fsdecode(path) if path is not None else None)

    def start(self) -> None:
        """Spawn the command (no shell unless the task asked for one) in its own session."""
        if self.begin():
            self.launch()

    def begin(self) -> bool:
        """Everything before the spawn; False when there is nothing to spawn (staging failed,
        or a memoized result was published)."""
        self._clock_start()
        if self.stage_error is not None or self.restored is not None:
            return False
        for out in self.req.task.outputs:  # tools expect the folders of their outputs to exist
            parent = os.path.dirname(out)
            if parent:
                os.makedirs(os.path.join(self.sandbox.root, parent), exist_ok=True)
        return True

    def command(self) -> Launchable | None:
        """What to spawn: the program, argv, environment, folder and log file; None (and the
        attempt ends as LAUNCH) when the program is not found."""
        argv = argv_of(self.req.task)
        env = _task_env(self.req, self.sandbox, self.base_env)
        path = next((e[5:] for e in reversed(env) if e.startswith(b"PATH=")), os.defpath.encode())
        try:
            exe = _resolve(argv[0], os.fsdecode(path))
        except OSError as exc:
            self.launch_failed(f"could not start {argv[0]!r}: {exc}")
            return None
        return Launchable(exe, argv, env, self.sandbox.root, self.sandbox.log_path)

    def launch(self) -> None:
        """Spawn the process here; on failure the attempt ends as LAUNCH with the reason."""
        cmd = self.command()
        if cmd is None:
            return
        try:
            pid = spawn_process(cmd.exe, cmd.argv, cmd.env, cmd.cwd, cmd.log_path)
        except OSError as exc:
            self.launch_failed(f"could not start {cmd.argv[0]!r}: {exc}")
            return
        self.unpin_tree = affinity.release(pid)
        self.pidfd = os.pidfd_open(pid)
        self.started(pid, time.time())

    def launch_failed(self, detail: str) -> None:
        self.stage_error = StageError(Reason.LAUNCH.value, detail)

    def lost(self, detail: str) -> None:
        """What ran the attempt vanished (not the task's fault): reported as a lost worker."""
        self.stage_error = StageError(Reason.LEASE_EXPIRED.value, detail)

    def started(self, pid: int, at: float) -> None:
        """The process runs (spawned here or by a pool's slot process): limits count from now."""
        self.proc = Proc(pid)
        self._clock_start(at)
        if self.kill_reason is not None:  # killed while it was starting
            with contextlib.suppress(ProcessLookupError):
                os.killpg(pid, signal.SIGKILL)

    def _clock_start(self, at: float | None = None) -> None:
        self.started_at = time.time() if at is None else at
        self.deadline = time.monotonic() + self.timeout_s
        self.next_disk_check = self.deadline - self.timeout_s + DISK_CHECK_EVERY_S

    def check(self, now_mono: float | None = None) -> None:
        """Enforce the limits on a running attempt; kills it (once) when one is exceeded."""
        if self.proc is None or self.kill_reason is not None:
            return
        now = time.monotonic() if now_mono is None else now_mono
        if now >= self.deadline:
            self.kill(Reason.TIMEOUT.value, f"killed after its timeout of {self.timeout_s:g} s"
                      + raise_hint(self.req.task, "timeout_s", self.timeout_s))
            return
        if self.unpin_tree:
            self.unpin_tree = False
            affinity.release_tree(self.proc.pid)
        rss = tree_rss_kb(self.proc.pid) + self._orphans_kb()
        self.peak_rss_kb = max(self.peak_rss_kb, rss)
        if rss > self.memory_kb:
            self.kill(Reason.OOM.value, f"used {rss // 1024} MB, over its memory limit of {self.memory_kb // 1024} MB"
                      + raise_hint(self.req.task, "memory_mb", self.memory_kb // 1024))
            return
        if now >= self.next_disk_check:
            self.next_disk_check = now + DISK_CHECK_EVERY_S
            used = dir_size_bytes(self.sandbox.root)
            if used > self.disk_bytes:
                self.kill(Reason.DISK_QUOTA.value, _over_disk(used, self.disk_bytes, self.req.task))

    def marker(self) -> tuple[bytes, ...]:
        return attempt_marker(self.req.run_id, self.req.task_id, self.req.attempt)

    def _orphans_kb(self) -> int:
        """Memory of what the task started that left its process tree (re-parented to its
        spawner, a child subreaper: see procs.py), found by the environment it started with."""
        assert self.proc is not None
        marker = None if self.sweep_all and not self.spawner else self.marker()
        return orphans_rss_kb({self.proc.pid, *self.keep}, marker, self.spawner)

    def kill(self, reason: str, detail: str) -> None:
        self.kill_reason, self.kill_detail = reason, detail
        if self.proc is not None and self.proc.returncode is None:  # not reaped: its pid is still its own
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.proc.pid, signal.SIGKILL)

    def reap(self) -> tuple[int, int]:
        """Wait for the process, then kill and reap what it left running that came back to
        this process (procs.sweep_orphans: those carrying its environment, or with `sweep_all`
        every child but `keep`, for a process that runs nothing but tasks); returns (exit code,
        peak RSS KiB of the main process or of an orphan, 0 when not known: see reap_process)."""
        assert self.proc is not None
        code, maxrss = reap_process(self.proc.pid)
        maxrss = max(maxrss, sweep_orphans(set(self.keep), None if self.sweep_all else self.marker()))
        self.reaped(code)
        if self.pidfd >= 0:
            os.close(self.pidfd)
            self.pidfd = -1
        return code, maxrss

    def reaped(self, code: int) -> None:
        """The process was waited for (here or by a slot process): its pid is no longer its own."""
        assert self.proc is not None
        self.proc.returncode = code

    def finish(
        self, blobs: BlobStore, exit_code: int | None, maxrss_kb: int, clear: bool = True,
        ended_at: float | None = None,
    ) -> TaskOutcome:
        """Check outputs, stage them out, store the log, and build the completion event. With
        clear=False the sandbox is left for the caller to remove (see FunctionPool._finish).
        `ended_at`: when the process ended, if the caller knows (a slot reports it): the result's
        finished_at and duration then leave out the time the report took to be handled."""
        req, sandbox = self.req, self.sandbox
        if self.cache is not None:  # what it staged may be evicted again (stage-out pins nothing)
            self.cache.release()
            if self.cache.runner_deps is not None and (changed := self.cache.runner_deps.check()):
                log.warning("task %s changed %d shared dependency file(s); removed, the next task gets "
                            "fresh copies", req.task_id, len(changed))
        finished = time.time() if ended_at is None else ended_at
        self.peak_rss_kb = max(self.peak_rss_kb, maxrss_kb)
        result = AttemptResult(
            exit_code=exit_code, started_at=self.started_at, finished_at=finished,
            duration_s=round(finished - self.started_at, 6), bytes_in=self.bytes_in, bytes_out=0,
            peak_rss_mb=round(self.peak_rss_kb / 1024, 1),
            cache=self.cache.stats.used() if self.cache is not None else None,
        )
        if self.restored is not None:  # a memoized result: nothing ran
            result = replace(result, exit_code=0, duration_s=0.0, outputs=self.restored, peak_rss_mb=0.0)
            if clear:
                sandbox.remove()
            return TaskOutcome(TaskSucceeded(req.run_id, req.task_id, req.attempt, result, cached=True),
                               self.started_at)
        reason, detail = self._failure(exit_code)
        if reason is None:
            try:
                bytes_out, outputs = sandbox.stage_out(blobs, req.run_id, req.task.outputs, self.cache)
                result = replace(result, bytes_out=bytes_out, outputs=outputs)
            except StageError as exc:
                reason, detail = exc.reason, str(exc)
        tail, key = self._store_log(blobs)
        if key is not None:
            result = replace(result, log_key=key)
        if clear:
            sandbox.remove()
        if reason is None:
            self._remember(result)
            return TaskOutcome(TaskSucceeded(req.run_id, req.task_id, req.attempt, result), self.started_at)
        result = replace(result, log_tail=(detail + "\n" + tail).strip() if tail else detail)
        return TaskOutcome(TaskFailed(req.run_id, req.task_id, req.attempt, reason, result), self.started_at)

    def _remember(self, result: AttemptResult) -> None:
        if self.cache is None or self.cache.memo is None or self.memo_key is None:
            return
        if len(result.outputs) != len(self.req.task.outputs):
            return
        self.cache.memo.put(self.memo_key, {
            "outputs": result.outputs, "task_type": self.req.task.task_type,
            "duration_s": result.duration_s, "peak_rss_mb": result.peak_rss_mb,
        })

    def _failure(self, exit_code: int | None) -> tuple[str | None, str]:
        if self.stage_error is not None:
            return self.stage_error.reason, str(self.stage_error)
        if self.kill_reason is not None:
            return self.kill_reason, self.kill_detail
        if exit_code is not None and self.peak_rss_kb > self.memory_kb:
            peak, limit = self.peak_rss_kb // 1024, self.memory_kb // 1024
            return (Reason.OOM.value, f"peak memory {peak} MB exceeded its limit of {limit} MB"
                    + raise_hint(self.req.task, "memory_mb", limit))
        if exit_code != 0:
            if exit_code is not None and exit_code < 0:
                how = f"killed by signal {-exit_code}"
            else:
                how = f"exited with code {exit_code}"
            return Reason.NONZERO_EXIT.value, f"the command {how}"
        missing, unsafe = self.sandbox.check_outputs(self.req.task.outputs)
        if unsafe:
            return Reason.UNSAFE_OUTPUT.value, (f"outputs are symlinks leading outside the sandbox "
                                               f"(or to a folder: a folder output must be a real one): {unsafe}")
        if missing:
            return Reason.MISSING_OUTPUT.value, f"exited 0 but did not write declared output(s): {missing}"
        files = self.sandbox.not_folders(self.req.task.folders, self.req.task.outputs)
        if files:
            return Reason.MISSING_OUTPUT.value, (f"wrote a file where it declared a folder (a trailing '/'): "
                                                 f"{files}; write a folder there, or declare a file")
        used = self.sandbox.measure()
        if used > self.disk_bytes:
            return Reason.DISK_QUOTA.value, _over_disk(used, self.disk_bytes, self.req.task)
        return None, ""

    def _store_log(self, blobs: BlobStore) -> tuple[str, str | None]:
        """Store the task's log; returns its tail and its key (None when it was not stored).
        The log lives beside the sandbox, but a
        task can still reach it: whatever is there now (a folder, a symlink, a hard link to
        another file) is never followed or moved, only a regular file's bytes are kept."""
        path, out = self.sandbox.log_path, self.sandbox.out_path
        try:
            fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
        except OSError:
            return "", None  # none (nothing was written, or the task removed it), or not a file
        try:
            st = os.fstat(fd)
            if not stat.S_ISREG(st.st_mode):
                return "", None  # a folder or such: Sandbox.remove takes it away
            if st.st_nlink != 1:
                # another name shares this inode (a file the task linked here): keep a copy of
                # the bytes and drop our name, so the next task's log never writes into it
                if st.st_size:
                    with contextlib.suppress(FileNotFoundError):
                        os.unlink(out)
                    copy_hashing(fd, out)
                os.unlink(path)
            elif st.st_size == 0:
                return "", None
            else:
                os.replace(path, out)  # out of the task's reach (out is free after stage-out)
            if st.st_size == 0:
                return "", None
            tail = os.pread(fd, LOG_TAIL_BYTES, max(0, st.st_size - LOG_TAIL_BYTES)).decode("utf-8", "replace")
        except OSError:
            return "", None
        finally:
            os.close(fd)
        key = log_key(self.req.run_id, self.req.task_id, self.req.attempt)
        try:
            blobs.put_file(key, out, move=True)
        except Exception:  # losing a log must not lose the result
            return tail, None
        finally:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(out)
        return tail, key


def run_task(
    req: TaskRequest, blobs: BlobStore, workroot: str, sources: Mapping[str, str] | None = None,
    sample_s: float = 0.2, on_start: Callable[[Attempt], None] | None = None, cache: TaskCache | None = None,
    base_env: Mapping[Any, Any] | None = None, all_orphans: bool = False,
) -> TaskOutcome:
    """Run one attempt to completion (blocking). Never raises for a task's own failure.
    `all_orphans`: this process runs nothing but tasks, so every child left when the task has
    ended is its orphan (else only those carrying its environment; see Attempt.reap).

    `on_start` is called once the process runs (to report TaskStarted, or to remember the
    attempt so a signal handler can kill it). `base_env` is the environment the task starts
    from (default: this process's own; the cloud runtimes pass one without AWS credentials).
    """
    att = Attempt.prepare(req, blobs, workroot, sources, base_env=base_env, cache=cache)
    att.sweep_all = all_orphans  # sampled with the task's memory too
    att.start()
    if att.proc is None:
        return att.finish(blobs, None, 0)
    if on_start is not None:
        on_start(att)
    while True:
        ready, _, _ = select.select([att.pidfd], [], [], sample_s)
        if ready:
            break
        att.check()
    code, maxrss = att.reap()
    return att.finish(blobs, code, maxrss)
