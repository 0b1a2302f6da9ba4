"""The engines compared, each with how to check it is there, its version, and how to run one
workload in a fresh folder: the floor (xargs), Updraft's local runtime, Makeflow, Snakemake,
Parsl (thread pool) and Dask (threaded scheduler, and distributed LocalCluster).

Every engine gets the same parallelism (`cores`). Peers run the tasks in one shared working
folder holding a copy of the example's data; Updraft reads the data folder and sandboxes.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from peers import makeflow_writer, snakemake_writer
from peers.install import UpdraftInstall, checkout
from peers.measure import Measured
from peers.translate import PeerTask, output_dirs
from peers.workloads import Workload, floor_cmd

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]
MAKEFLOW = "/usr/bin/makeflow"


@dataclass(frozen=True)
class Prepared:
    cmd: list[str]
    cwd: Path
    env: dict[str, str]
    check: Callable[[Measured], str | None]  # None when the run did what it should, else why not


@dataclass
class Env:
    """Where the peers live: the benchmark's virtual environment."""

    venv: Path
    cores: int
    base_env: dict[str, str] = field(default_factory=lambda: dict(os.environ))
    updraft: UpdraftInstall = field(default_factory=lambda: checkout(REPO))  # see install.updraft

    @property
    def python(self) -> str:
        return str(self.venv / "bin" / "python")

    def bin(self, name: str) -> str:
        return str(self.venv / "bin" / name)


@dataclass(frozen=True)
class Engine:
    name: str
    label: str
    how: str
    synthetic_only: bool = False

    def missing(self, env: Env) -> str | None:
        """Why this engine cannot run here, or None."""
        return None

    def prepare(self, env: Env, wl: Workload, tasks: Sequence[PeerTask], run_dir: Path) -> Prepared:
        raise NotImplementedError


def _fail(m: Measured, what: str) -> str | None:
    if m.timed_out:
        return f"{what}: timed out"
    if m.returncode != 0:
        return f"{what}: exit {m.returncode}: {(m.stderr or m.stdout)[-600:]}"
    return None


def _shared_folder(wl: Workload, tasks: Sequence[PeerTask], run_dir: Path) -> Path:
    """The peers' working folder: a copy of the example's data plus every output's folder."""
    work = run_dir / "work"
    if wl.data is not None:
        shutil.copytree(wl.data, work)
    work.mkdir(parents=True, exist_ok=True)
    for d in output_dirs(tasks):
        (work / d).mkdir(parents=True, exist_ok=True)
    return work


def _files_check(what: str, work: Path, tasks: Sequence[PeerTask], markers: bool) -> Callable[[Measured], str | None]:
    def check(m: Measured) -> str | None:
        failed = _fail(m, what)
        if failed:
            return failed
        missing = [o for t in tasks for o in t.outputs if (markers or o != t.marker) and not (work / o).exists()]
        return f"{what}: {len(missing)} outputs missing, e.g. {missing[:3]}" if missing else None
    return check


@dataclass(frozen=True)
class Floor(Engine):
    def prepare(self, env: Env, wl: Workload, tasks: Sequence[PeerTask], run_dir: Path) -> Prepared:
        run_dir.mkdir(parents=True)
        return Prepared(floor_cmd(wl.doc["tasks"], env.cores), run_dir, env.base_env, lambda m: _fail(m, "xargs"))


@dataclass(frozen=True)
class Updraft(Engine):
    def prepare(self, env: Env, wl: Workload, tasks: Sequence[PeerTask], run_dir: Path) -> Prepared:
        run_dir.mkdir(parents=True)
        wf = run_dir / "workflow.json"
        wf.write_text(json.dumps(wl.doc))
        workdir = run_dir / "updraft"
        cmd = [*env.updraft.prefix, "run", str(wf), "--json", "--concurrency", str(env.cores), "--no-cache",
               "--workdir", str(workdir)]
        if wl.data is not None:
            cmd += ["--data", str(wl.data)]
        run_env = {**env.base_env, **env.updraft.env}

        def check(m: Measured) -> str | None:
            failed = _fail(m, "updraft")
            if failed:
                return failed
            try:
                result = json.loads(m.stdout.strip().splitlines()[-1])
            except (ValueError, IndexError):
                return f"updraft: no JSON result in {m.stdout[-300:]!r}"
            if result.get("state") != "SUCCEEDED":
                return f"updraft: run {result}"
            data = workdir / "blobs" / "runs" / result["run_id"] / "data"
            declared = [o for t in wl.doc["tasks"] for o in t.get("outputs", [])]
            missing = [o for o in declared if not (data / o).exists()]
            return f"updraft: {len(missing)} outputs missing, e.g. {missing[:3]}" if missing else None
        return Prepared(cmd, run_dir, run_env, check)


@dataclass(frozen=True)
class Makeflow(Engine):
    def missing(self, env: Env) -> str | None:
        return None if os.access(MAKEFLOW, os.X_OK) else "makeflow not installed (Debian coop-computing-tools)"

    def prepare(self, env: Env, wl: Workload, tasks: Sequence[PeerTask], run_dir: Path) -> Prepared:
        work = _shared_folder(wl, tasks, run_dir)
        program = run_dir / "workflow.mf"
        makeflow_writer.write(tasks, program)
        return Prepared(makeflow_writer.command(MAKEFLOW, program, env.cores), work, env.base_env,
                        _files_check("makeflow", work, tasks, markers=True))


@dataclass(frozen=True)
class Snakemake(Engine):
    def missing(self, env: Env) -> str | None:
        return None if os.access(env.bin("snakemake"), os.X_OK) else "snakemake not installed in the bench venv"

    def prepare(self, env: Env, wl: Workload, tasks: Sequence[PeerTask], run_dir: Path) -> Prepared:
        work = _shared_folder(wl, tasks, run_dir)
        program = run_dir / "Snakefile"
        snakemake_writer.write(tasks, program)
        return Prepared(snakemake_writer.command(env.bin("snakemake"), program, work, env.cores), work,
                        env.base_env, _files_check("snakemake", work, tasks, markers=True))


def tasks_file(tasks: Sequence[PeerTask], path: Path) -> None:
    """The Python peers' input: id, argv or script, parent ids; in a topological order."""
    path.write_text(json.dumps([
        {"id": t.id, "argv": list(t.argv) if t.argv is not None else None, "script": t.script,
         "parents": list(t.parents)} for t in tasks
    ]))


def _done_check(what: str, work: Path, tasks: Sequence[PeerTask]) -> Callable[[Measured], str | None]:
    files = _files_check(what, work, tasks, markers=False)

    def check(m: Measured) -> str | None:
        failed = files(m)
        if failed:
            return failed
        try:
            done = json.loads(m.stdout.strip().splitlines()[-1])["done"]
        except (ValueError, IndexError, KeyError):
            return f"{what}: no result line in {m.stdout[-300:]!r}"
        return None if done == len(tasks) else f"{what}: {done} of {len(tasks)} tasks done"
    return check


def _has_module(env: Env, module: str) -> bool:
    probe = subprocess.run([env.python, "-c", f"import {module}"], capture_output=True, check=False)
    return probe.returncode == 0


@dataclass(frozen=True)
class Parsl(Engine):
    def missing(self, env: Env) -> str | None:
        return None if _has_module(env, "parsl") else "parsl not installed in the bench venv"

    def prepare(self, env: Env, wl: Workload, tasks: Sequence[PeerTask], run_dir: Path) -> Prepared:
        work = _shared_folder(wl, tasks, run_dir)
        tasks_file(tasks, run_dir / "tasks.json")
        cmd = [env.python, str(HERE / "parsl_program.py"), str(run_dir / "tasks.json"), str(env.cores),
               str(run_dir / "runinfo")]
        return Prepared(cmd, work, env.base_env, _done_check("parsl", work, tasks))


@dataclass(frozen=True)
class Dask(Engine):
    mode: str = "threads"

    def missing(self, env: Env) -> str | None:
        module = "dask.distributed" if self.mode == "distributed" else "dask"
        return None if _has_module(env, module) else f"{module} not installed in the bench venv"

    def prepare(self, env: Env, wl: Workload, tasks: Sequence[PeerTask], run_dir: Path) -> Prepared:
        work = _shared_folder(wl, tasks, run_dir)
        tasks_file(tasks, run_dir / "tasks.json")
        cmd = [env.python, str(HERE / "dask_program.py"), str(run_dir / "tasks.json"), str(env.cores), self.mode]
        return Prepared(cmd, work, env.base_env, _done_check(f"dask-{self.mode}", work, tasks))


ENGINES: tuple[Engine, ...] = (
    Floor("floor", "floor (xargs -P)", "`seq N \\| xargs -P <cores> -I{} true`, level by level; a chain: one "
          "`xargs -P 1` over all its commands (synthetic only)",
          synthetic_only=True),
    Updraft("updraft", "Updraft (local)", "`updraft run WF --json --concurrency <cores> --no-cache --workdir <fresh>`"),
    Makeflow("makeflow", "Makeflow", "`makeflow -T local -j <cores>`, one rule per task"),
    Snakemake("snakemake", "Snakemake", "`snakemake --cores <cores> --scheduler greedy --quiet`; a rule per "
              "task, the tasks without outputs share one wildcard rule (1.6x faster than a rule each)"),
    Parsl("parsl", "Parsl (threads)", "`ThreadPoolExecutor(max_threads=<cores>)`, a python_app per task "
          "calling subprocess.run, parents' futures as arguments"),
    Dask("dask-threads", "Dask (threads)", "a dask.delayed per task calling subprocess.run, threaded scheduler, "
         "`num_workers=<cores>`", mode="threads"),
    Dask("dask-distributed", "Dask distributed", "the same graph on "
         "`LocalCluster(n_workers=<cores>, threads_per_worker=1)`", mode="distributed"),
)
