"""A CWL process and its job as an Updraft Workflow.

A CommandLineTool is one task; a Workflow's steps are one task each, with an edge wherever a
step reads another's output. Each task's command is the template `updraft-cwl-task SPEC`
(see hook.py); its one declared output is a tar of its output object and files, which later
steps list as inputs (so the engine orders, caches and memoizes them as any file). External
files (the job's, and File defaults in the documents) are the run's inputs.
"""

from __future__ import annotations

import copy
import json
import os
from collections.abc import Mapping
from typing import Any

from msgspec import Struct

from chalicelib.cwl import values as V
from chalicelib.cwl.errors import CwlError, Unsupported
from chalicelib.cwl.hook import LAUNCHER
from chalicelib.cwl.launch import sources_of, step_entry
from chalicelib.cwl.tool import requirements
from chalicelib.workflow.model import InputFile, Resources, Task, Workflow

ARCHIVE_DIR = "cwl/out"


class Final(Struct, frozen=True):
    """How the run's output object is assembled: for each output, its sources."""

    outputs: dict[str, dict[str, Any]]
    values: dict[str, Any]  # workflow input values (locations updraft:PATH)
    archives: dict[str, str]  # task id -> its archive path
    origins: dict[str, str]  # updraft:PATH location -> the local file or folder it came from


class _Stager:
    """Gives every external File/Directory a path in the data root."""

    def __init__(self, patterns: list[str]) -> None:
        self.inputs: dict[str, str] = {}  # data path -> local source
        self.by_source: dict[str, str] = {}
        self.files_of: dict[str, list[str]] = {}  # location -> data paths it needs
        self.origin: dict[str, str] = {}  # location -> the local file or folder
        self.patterns = patterns

    def stage(self, v: Any, base: str | None, strict: bool = True) -> Any:
        """`v` with its files' locations updraft:PATH. A missing file is an error when
        `strict` (the job's), else left as it is (a document's default the job overrides)."""
        if isinstance(v, list):
            return [self.stage(x, base, strict) for x in v]
        if not isinstance(v, dict):
            return v
        if V.is_file(v) and ("location" in v or "path" in v):
            return self._file(v, base, strict)
        return {k: self.stage(x, base, strict) for k, x in v.items()}

    def _file(self, v: dict[str, Any], base: str | None, strict: bool) -> dict[str, Any]:
        src = os.path.abspath(V.local_path(v["path"], base) if "path" in v else V.local_path(v["location"], base, True))
        if not os.path.exists(src):
            if not strict:
                return v
            raise CwlError(f"input {v['class'].lower()} {src} does not exist")
        w = {k: x for k, x in v.items() if k not in ("path", "location", "listing", "dirname")}
        if "secondaryFiles" in v:
            w["secondaryFiles"] = [self.stage(s, base, strict) for s in v["secondaryFiles"]]
        folder = self.by_source.get(os.path.dirname(src))
        if folder is None:
            folder = f"cwl/in/{len(self.by_source)}"
            self.by_source[os.path.dirname(src)] = folder
        name = v.get("basename") or os.path.basename(src)  # a given basename renames the file
        data = f"{folder}/{name}"
        needed = []
        if os.path.isdir(src):
            for dirpath, _dirs, files in os.walk(src):
                for entry in files:
                    full = os.path.join(dirpath, entry)
                    needed.append(self._add(f"{data}/{os.path.relpath(full, src)}", full))
        else:
            needed.append(self._add(data, src))
            for pat in self.patterns:
                sib = os.path.join(os.path.dirname(src), V.secondary_name(os.path.basename(src), pat))
                if os.path.isfile(sib):
                    needed.append(self._add(f"{folder}/{os.path.basename(sib)}", sib))
        w["location"] = "updraft:" + data
        self.files_of[w["location"]] = needed
        self.origin[w["location"]] = src
        return w

    def _add(self, data: str, src: str) -> str:
        self.inputs[data] = src
        return data

    def needed(self, spec: Any) -> list[str]:
        found: list[str] = []
        _walk_locations(spec, lambda loc: found.extend(self.files_of.get(loc, [])))
        return sorted(set(found))


def _walk_locations(v: Any, fn: Any) -> None:
    if isinstance(v, list):
        for x in v:
            _walk_locations(x, fn)
    elif isinstance(v, dict):
        loc = v.get("location")
        if isinstance(loc, str) and loc.startswith("updraft:"):
            fn(loc)
        for x in v.values():
            _walk_locations(x, fn)


def _patterns(v: Any, out: list[str]) -> list[str]:
    """Every literal secondaryFiles pattern in a document (to stage the job's siblings)."""
    if isinstance(v, list):
        for x in v:
            _patterns(x, out)
    elif isinstance(v, dict):
        sec = v.get("secondaryFiles")
        for s in sec if isinstance(sec, list) else [sec] if sec else []:
            pat = s.get("pattern") if isinstance(s, dict) else s
            if isinstance(pat, str) and not V.has_expr(pat):
                pat = pat.rstrip("?")
                if pat not in out:
                    out.append(pat)
        for x in v.values():
            _patterns(x, out)
    return out


def _task_id(text: str) -> str:
    return V.safe_id(text)


def resources_of(proc: Mapping[str, Any], inherited: list[dict[str, Any]]) -> Resources:
    """ResourceRequirement's minima (when they are plain numbers) as the task's resources."""
    reqs = requirements(proc, inherited)
    rr, limit = reqs.get("ResourceRequirement", {}), reqs.get("ToolTimeLimit", {})
    base = Resources()

    def num(*keys: str) -> float | None:
        for k in keys:
            v = rr.get(k)
            if isinstance(v, int | float) and not isinstance(v, bool):
                return float(v)
        return None

    ram, cores = num("ramMin", "ramMax"), num("coresMin", "coresMax")
    outdir, tmpdir = num("outdirMin", "outdirMax"), num("tmpdirMin", "tmpdirMax")
    timeout = limit.get("timelimit")
    return Resources(
        memory_mb=max(base.memory_mb, int(ram) + 128) if ram else base.memory_mb,
        cpus=max(cores, 0.25) if cores else base.cpus,
        disk_mb=max(base.disk_mb, int((outdir or 0) + (tmpdir or 0))),
        timeout_s=float(timeout) if isinstance(timeout, int) and timeout > 0 else base.timeout_s,
    )


def _command(spec: Mapping[str, Any]) -> tuple[str, ...]:
    return (LAUNCHER, json.dumps(spec, sort_keys=True, separators=(",", ":")))


def plan(proc: dict[str, Any], job: Mapping[str, Any], job_base: str | None, name: str) -> tuple[Workflow, Final]:
    job = dict(job)
    extra = job.pop("cwl:requirements", None)
    if extra:  # the job's requirements override the documents' (every process's, last)
        proc = copy.deepcopy(proc)
        _add_requirements(proc, [r for r in extra if isinstance(r, dict)])
    stager = _Stager(_patterns(proc.get("inputs", []), []))  # the run's inputs' secondary files
    job = stager.stage(copy.deepcopy(dict(job)), job_base)
    proc = stager.stage(copy.deepcopy(proc), None, strict=False)
    cls = proc.get("class")
    if cls in ("CommandLineTool", "ExpressionTool"):
        tid = _task_id(name)
        archive = f"{ARCHIVE_DIR}/{tid}.tar"
        spec = {"process": proc, "job": job, "archive": archive}
        task = Task(id=tid, command=_command(spec), inputs=tuple(stager.needed(spec)), outputs=(archive,),
                    resources=resources_of(proc, []), type=_task_id(_base_command(proc) or tid))
        outputs = {o["id"]: {"sources": [{"step": tid, "out": o["id"]}]} for o in proc.get("outputs", [])}
        final = Final(outputs, {}, {tid: archive}, _origins(stager))
        return _workflow(name, [task], stager), final
    if cls != "Workflow":
        raise Unsupported(f"class {cls} is not supported")
    return _plan_workflow(proc, job, stager, name)


def _add_requirements(proc: dict[str, Any], extra: list[dict[str, Any]]) -> None:
    proc["requirements"] = [*(proc.get("requirements", []) or []), *copy.deepcopy(extra)]
    for step in proc.get("steps", []) or []:
        if isinstance(step.get("run"), dict):
            _add_requirements(step["run"], extra)


def _base_command(proc: Mapping[str, Any]) -> str:
    base = proc.get("baseCommand")
    if isinstance(base, list):
        base = base[0] if base else ""
    return os.path.basename(str(base or ""))


def _origins(stager: _Stager) -> dict[str, str]:
    return dict(stager.origin)


def _workflow(name: str, tasks: list[Task], stager: _Stager) -> Workflow:
    inputs = tuple(InputFile(path=p, source=s) for p, s in sorted(stager.inputs.items()))
    return Workflow(name=name, tasks=tuple(tasks), inputs=inputs)


def _plan_workflow(wf: dict[str, Any], job: Mapping[str, Any], stager: _Stager,
                   name: str) -> tuple[Workflow, Final]:
    reqs = wf.get("requirements", []) or []
    requirements(wf)  # refuse unknown requirements up front
    values: dict[str, Any] = {}
    for p in wf.get("inputs", []):
        v = job.get(p["id"])
        if v is None and "default" in p:
            v = p["default"]
        if v is None and not V.optional(p.get("type")):
            raise CwlError(f"workflow input {p['id']!r} has no value and no default: give it one in the job "
                           "(updraft run FILE.cwl --job JOB.yml; updraft-cwl-runner FILE.cwl JOB.yml)")
        values[p["id"]] = v
    step_ids = {s["id"] for s in wf.get("steps", [])}
    tasks = []
    archives = {}
    for s in wf.get("steps", []):
        run = s["run"]
        if run.get("class") == "Operation":
            raise Unsupported(f"step {s['id']}: Operation cannot run")
        tid = _task_id(s["id"])
        archive = f"{ARCHIVE_DIR}/{tid}.tar"
        archives[tid] = archive
        step, inherited = step_entry(s, wf, reqs, step_ids)
        upstream = {src["step"]: f"{ARCHIVE_DIR}/{src['step']}.tar"
                    for entry in step["in"].values() for src in entry["sources"] if "step" in src}
        spec = {"process": run, "inherited": inherited, "step": step, "values": values,
                "upstream": upstream, "archive": archive}
        tasks.append(Task(
            id=tid, command=_command(spec), inputs=tuple([*stager.needed(spec), *sorted(upstream.values())]),
            outputs=(archive,), resources=resources_of(run, inherited),
            type=_task_id(_base_command(run) or tid),
        ))
    outputs = {}
    for o in wf.get("outputs", []):
        entry = {"sources": sources_of(o.get("outputSource"), step_ids),
                 "multiple": isinstance(o.get("outputSource"), list) and len(o["outputSource"]) > 1}
        for k in ("linkMerge", "pickValue"):
            if k in o:
                entry[k] = o[k]
        outputs[o["id"]] = entry
    return _workflow(name, tasks, stager), Final(outputs, values, archives, _origins(stager))
