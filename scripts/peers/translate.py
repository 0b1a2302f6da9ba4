"""A native Updraft workflow as engine-neutral tasks that peers run in one shared folder.

Updraft runs each task in a sandbox holding only its declared inputs; the peers run every task
in one working folder. The translation keeps the commands as they are, with two additions the
shared folder needs:

- a task that declares no outputs (or that others wait for through `after`) gets a marker file
  under `.peers/done/`, written by redirecting its stdout, so file-driven engines (Makeflow,
  Snakemake) can order it; future-driven engines (Parsl, Dask) ignore markers;
- a task whose argv names the working folder itself (`mImgtbl -r . t.tbl`) would see every file
  of the shared folder, so it runs in a private folder holding hard links to its declared
  inputs, and its outputs are moved back.

Shell lines start with `exec` so that `true` is a real fork+exec in every engine, not the
shell's builtin.
"""

from __future__ import annotations

import heapq
import posixpath
import shlex
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

MARKERS = ".peers/done"
SANDBOXES = ".peers/sb"


@dataclass(frozen=True)
class PeerTask:
    """One task as the peers see it.

    `argv` is set when the task runs without a shell (future-driven engines exec it directly);
    otherwise `script` is the /bin/sh script. `line` is the one shell line file-driven engines
    run: the command plus its marker. `inputs` and `outputs` include the markers.
    """

    id: str
    argv: tuple[str, ...] | None
    script: str | None
    line: str
    inputs: tuple[str, ...]
    outputs: tuple[str, ...]
    parents: tuple[str, ...]

    @property
    def marker(self) -> str:
        return marker_path(self.id)


def marker_path(task_id: str) -> str:
    return f"{MARKERS}/{task_id}"


def translate(doc: Mapping[str, Any]) -> list[PeerTask]:
    """The workflow's tasks in a topological order (stable: parents-first input keeps its order)."""
    raw = list(doc["tasks"])
    for t in raw:
        if t.get("env") or (doc.get("defaults") or {}).get("env"):
            raise ValueError(f"task {t['id']}: env is not supported by the peer translation")
        if ("command" in t) == ("shell" in t):
            raise ValueError(f"task {t['id']}: give exactly one of command and shell")
    producers: dict[str, str] = {}
    for t in raw:
        for out in t.get("outputs", []):
            producers.setdefault(out, t["id"])
    waited_on = {a for t in raw for a in t.get("after", [])}
    needs_marker = {t["id"] for t in raw if not t.get("outputs") or t["id"] in waited_on}
    parents = {t["id"]: _parents(t, producers) for t in raw}
    tasks = []
    for t in raw:
        tid = t["id"]
        argv, script = _command(t)
        own = [marker_path(tid)] if tid in needs_marker else []
        inputs = list(t.get("inputs", [])) + [marker_path(a) for a in t.get("after", [])]
        tasks.append(PeerTask(
            id=tid, argv=argv, script=script, line=_line(argv, script, own, bool(t.get("outputs"))),
            inputs=tuple(dict.fromkeys(inputs)), outputs=(*t.get("outputs", []), *own), parents=parents[tid],
        ))
    return topological(tasks)


def _parents(t: Mapping[str, Any], producers: Mapping[str, str]) -> tuple[str, ...]:
    seen: dict[str, None] = {}
    for path in t.get("inputs", []):
        p = producers.get(path)
        if p is not None and p != t["id"]:
            seen[p] = None
    for a in t.get("after", []):
        if a != t["id"]:
            seen[a] = None
    return tuple(seen)


def _command(t: Mapping[str, Any]) -> tuple[tuple[str, ...] | None, str | None]:
    if "shell" in t:
        return None, t["shell"]
    argv = tuple(t["command"])
    if "." in argv[1:]:
        return None, isolated(t["id"], argv, t.get("inputs", []), t.get("outputs", []))
    return argv, None


def isolated(task_id: str, argv: Sequence[str], inputs: Iterable[str], outputs: Iterable[str]) -> str:
    """A script running argv in a private folder of hard links to its inputs (the sandbox it expects)."""
    box = f"{SANDBOXES}/{task_id}"
    up = "/".join([".."] * len(box.split("/")))
    steps = [f"rm -rf {shlex.quote(box)}"]
    by_dir: dict[str, list[str]] = {}
    for path in inputs:
        by_dir.setdefault(posixpath.dirname(path), []).append(path)
    dirs = sorted({posixpath.join(box, d) if d else box for d in by_dir}
                  | {posixpath.join(box, posixpath.dirname(o)) for o in outputs})
    steps.append("mkdir -p " + " ".join(shlex.quote(d) for d in dirs))
    for d, paths in by_dir.items():
        dest = posixpath.join(box, d) if d else box
        steps.append("ln " + " ".join(shlex.quote(p) for p in paths) + " " + shlex.quote(dest) + "/")
    steps.append(f"cd {shlex.quote(box)}")
    steps.append(shlex.join(argv))
    steps += [f"mv {shlex.quote(o)} {shlex.quote(up + '/' + o)}" for o in outputs]
    return " && ".join(steps)


def _line(argv: tuple[str, ...] | None, script: str | None, marker: list[str], has_outputs: bool) -> str:
    if argv is not None:
        body = "exec " + shlex.join(argv)
        if not marker:
            return body
        if not has_outputs:
            return f"{body} > {shlex.quote(marker[0])}"
        return f"{shlex.join(argv)} && : > {shlex.quote(marker[0])}"
    assert script is not None
    if not marker:
        return script
    return f"( {script} ) && : > {shlex.quote(marker[0])}"


def topological(tasks: Sequence[PeerTask]) -> list[PeerTask]:
    """Kahn's order, keeping the given order among ready tasks; a cycle is an error."""
    by_id = {t.id: t for t in tasks}
    unknown = sorted({p for t in tasks for p in t.parents if p not in by_id})
    if unknown:
        raise ValueError(f"unknown parent ids: {', '.join(unknown[:5])}")
    pending = {t.id: len(t.parents) for t in tasks}
    children: dict[str, list[str]] = {t.id: [] for t in tasks}
    for t in tasks:
        for p in t.parents:
            children[p].append(t.id)
    index = {t.id: i for i, t in enumerate(tasks)}
    ready = [index[t.id] for t in tasks if not t.parents]
    heapq.heapify(ready)
    order: list[PeerTask] = []
    while ready:
        t = tasks[heapq.heappop(ready)]
        order.append(t)
        for c in children[t.id]:
            pending[c] -= 1
            if pending[c] == 0:
                heapq.heappush(ready, index[c])
    if len(order) != len(tasks):
        raise ValueError("the workflow has a cycle")
    return order


def edges(tasks: Iterable[PeerTask]) -> set[tuple[str, str]]:
    return {(p, t.id) for t in tasks for p in t.parents}


def output_dirs(tasks: Iterable[PeerTask]) -> list[str]:
    """Folders the shared working folder needs before the run (Updraft's runner makes them itself)."""
    return sorted({posixpath.dirname(o) for t in tasks for o in t.outputs if posixpath.dirname(o)})
