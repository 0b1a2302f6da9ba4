"""The program a CWL task runs (see hook.py): resolve the step's inputs (job values,
upstream steps' packed outputs, defaults, valueFrom, when, scatter), run the tool, pack the
output object and its files into the task's one declared output (a tar).

Locations in the spec: "updraft:PATH" is a file in the run's data root (staged into the
sandbox at PATH); upstream outputs come packed, their locations "arc:NAME" inside the pack.
"""

from __future__ import annotations

import io
import itertools
import json
import os
import sys
import tarfile
from collections.abc import Mapping, Sequence
from typing import Any

from chalicelib.cwl import values as V
from chalicelib.cwl.errors import UNSUPPORTED_EXIT, CwlError, Unsupported
from chalicelib.cwl.expr import Context, evaluate
from chalicelib.cwl.tool import js_context, load_contents, requirements, run_process

OBJECT_NAME = "cwl.object.json"


def main(argv: Sequence[str]) -> int:
    if len(argv) != 1:
        sys.stderr.write("usage: updraft-cwl-task SPEC-JSON\n")
        return 2
    try:
        spec = json.loads(argv[0])
        run_spec(spec, os.getcwd())
    except Unsupported as exc:
        sys.stderr.write(f"cwl: unsupported: {exc}\n")
        return UNSUPPORTED_EXIT
    except CwlError as exc:
        sys.stderr.write(f"cwl: {exc}\n")
        return 1
    return 0


def run_spec(spec: Mapping[str, Any], root: str) -> dict[str, Any]:
    work = os.path.join(root, "_cwl")
    upstream = _unpack_upstream(spec.get("upstream", {}), root, work)
    values = {k: _localize(v, root, upstream) for k, v in spec.get("values", {}).items()}
    proc = _localize(spec["process"], root, upstream)
    inherited = spec.get("inherited", [])
    step = _localize(spec.get("step", {}), root, upstream)
    job = _localize(spec["job"], root, upstream) if "job" in spec else step_job(step, values, upstream)
    result = run_step(step, proc, job, work, inherited)
    pack(result, os.path.join(root, spec["archive"]))
    return result


def extract(tar: tarfile.TarFile, dest: str) -> None:
    """Unpack a step's archive under `dest`: files and folders only, each inside `dest` (the
    'data' filter where the interpreter has it, Python >= 3.11.4; checked here otherwise)."""
    if hasattr(tarfile, "data_filter"):
        tar.extractall(dest, filter="data")
        return
    root = os.path.realpath(dest)
    for member in tar.getmembers():
        where = os.path.realpath(os.path.join(root, member.name))
        if not (member.isfile() or member.isdir()) or os.path.commonpath([root, where]) != root:
            raise CwlError(f"a step's archive holds {member.name!r}, which is not a file or folder under its own")
    tar.extractall(dest)  # noqa: S202  # nosec B202 - every member checked above: a file or folder inside dest


def _unpack_upstream(archives: Mapping[str, str], root: str, work: str) -> dict[str, dict[str, Any]]:
    """step id -> its output object, files unpacked under work/up/STEP."""
    out = {}
    for step, archive in archives.items():
        dest = os.path.join(work, "up", step)
        os.makedirs(dest, exist_ok=True)
        with tarfile.open(os.path.join(root, archive)) as tar:
            extract(tar, dest)
        with open(os.path.join(dest, OBJECT_NAME), encoding="utf-8") as fh:
            obj = json.load(fh)
        out[step] = _unarc(obj, dest)
    return out


def _unarc(v: Any, dest: str) -> Any:
    if isinstance(v, list):
        return [_unarc(x, dest) for x in v]
    if isinstance(v, dict):
        w = {k: _unarc(x, dest) for k, x in v.items()}
        loc = w.get("location")
        if V.is_file(w) and isinstance(loc, str) and loc.startswith("arc:"):
            path = os.path.join(dest, loc[4:])
            w["path"], w["location"] = path, "file://" + path
            w["dirname"] = os.path.dirname(path)
        return w
    return v


def _localize(v: Any, root: str, upstream: Mapping[str, Any]) -> Any:
    if isinstance(v, list):
        return [_localize(x, root, upstream) for x in v]
    if isinstance(v, dict):
        w = {k: _localize(x, root, upstream) for k, x in v.items()}
        loc = w.get("location")
        if isinstance(loc, str) and loc.startswith("updraft:") and w.get("class") in ("File", "Directory"):
            path = os.path.join(root, loc[len("updraft:"):])
            w["location"], w["path"] = "file://" + path, path
        return w
    return v


def sources_of(raw: Any, steps: set[str]) -> list[dict[str, str]]:
    """A `source`/`outputSource` as [{"input": NAME} | {"step": TASK_ID, "out": NAME}]."""
    out = []
    for src in raw if isinstance(raw, list) else [raw] if raw is not None else []:
        head, _, tail = str(src).partition("/")
        if tail and head in steps:
            out.append({"step": V.safe_id(head), "out": tail})
        else:
            out.append({"input": str(src)})
    return out


def step_entry(s: Mapping[str, Any], wf: Mapping[str, Any], reqs: list[dict[str, Any]],
               step_ids: set[str]) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """A workflow step as the launcher reads it, and the requirements its process inherits."""
    ins: dict[str, Any] = {}
    loading = {p["id"] for p in wf.get("inputs", []) if p.get("loadContents")}
    for i in s.get("in", []):
        entry: dict[str, Any] = {"sources": sources_of(i.get("source"), step_ids),
                                 "multiple": isinstance(i.get("source"), list) and len(i["source"]) > 1}
        for k in ("default", "valueFrom", "linkMerge", "pickValue"):
            if k in i:
                entry[k] = i[k]
        if i.get("loadContents") or any(src.get("input") in loading for src in entry["sources"]):
            entry["loadContents"] = True
        ins[i["id"]] = entry
    inherited = [*reqs, *(s.get("requirements", []) or [])]
    js = next((list(r.get("expressionLib", []) or []) for r in [*(wf.get("hints", []) or []), *inherited]
               if V.short_class(r.get("class", "")) == "InlineJavascriptRequirement"), None)
    step: dict[str, Any] = {"id": s["id"], "in": ins, "scatter": s.get("scatter") or [],
                            "scatterMethod": s.get("scatterMethod"), "js": js}
    if "when" in s:
        step["when"] = s["when"]
    if step["scatter"] and not any(V.short_class(r.get("class", "")) == "ScatterFeatureRequirement"
                                   for r in inherited):
        raise CwlError(f"step {s['id']}: scatter needs ScatterFeatureRequirement")
    return step, inherited


def run_workflow(wf: Mapping[str, Any], job: Mapping[str, Any], work: str,
                 inherited: list[dict[str, Any]]) -> dict[str, Any]:
    """A (sub)workflow inside one task: its steps one after another, in dependency order."""
    reqs = [*inherited, *(wf.get("requirements", []) or [])]
    values = {}
    for p in wf.get("inputs", []):
        v = job.get(p["id"])
        values[p["id"]] = p.get("default") if v is None else v
    steps = list(wf.get("steps", []))
    step_ids = {s["id"] for s in steps}
    done: dict[str, dict[str, Any]] = {}
    while len(done) < len(steps):
        ready = [s for s in steps if V.safe_id(s["id"]) not in done and all(
            src.get("step") in done for i in s.get("in", []) for src in sources_of(i.get("source"), step_ids)
            if "step" in src)]
        if not ready:
            raise CwlError("the subworkflow's steps depend on each other in a cycle")
        for s in ready:
            step, step_reqs = step_entry(s, wf, reqs, step_ids)
            sub_job = step_job(step, values, done)
            done[V.safe_id(s["id"])] = run_step(step, s["run"], sub_job, os.path.join(work, V.safe_id(s["id"])),
                                                step_reqs)
    out = {}
    for o in wf.get("outputs", []):
        srcs = sources_of(o.get("outputSource"), step_ids)
        got = [_source_value(src, values, done) for src in srcs]
        multiple = isinstance(o.get("outputSource"), list) and len(o["outputSource"]) > 1
        out[o["id"]] = pick(merge(got, o.get("linkMerge"), multiple), o.get("pickValue"), o["id"])
    return out


def _source_value(src: Mapping[str, Any], values: Mapping[str, Any], upstream: Mapping[str, Any]) -> Any:
    if "input" in src:
        return values.get(src["input"])
    return upstream.get(src["step"], {}).get(src["out"])


def step_job(step: Mapping[str, Any], values: Mapping[str, Any], upstream: Mapping[str, Any]) -> dict[str, Any]:
    """The values of a workflow step's inputs (valueFrom not yet applied: see run_step)."""
    job: dict[str, Any] = {}
    for name, inp in step.get("in", {}).items():
        got = [_source_value(s, values, upstream) for s in inp.get("sources", [])]
        value = merge(got, inp.get("linkMerge"), inp.get("multiple", False))
        value = pick(value, inp.get("pickValue"), name)
        if value is None and "default" in inp:
            value = inp["default"]
        job[name] = value
    return job


def merge(got: list[Any], link_merge: str | None, multiple: bool) -> Any:
    if not multiple and link_merge is None:
        return got[0] if got else None
    if (link_merge or "merge_nested") == "merge_nested":
        return got
    flat: list[Any] = []
    for g in got:
        flat.extend(g if isinstance(g, list) else [g])
    return flat


def pick(value: Any, how: str | None, name: str) -> Any:
    if how is None:
        return value
    items = [x for x in (value if isinstance(value, list) else [value]) if x is not None]
    if how == "first_non_null":
        if not items:
            raise CwlError(f"step input {name}: pickValue first_non_null found no value")
        return items[0]
    if how == "the_only_non_null":
        if len(items) != 1:
            raise CwlError(f"step input {name}: pickValue the_only_non_null found {len(items)} values")
        return items[0]
    return items


def run_step(step: Mapping[str, Any], proc: Mapping[str, Any], job: dict[str, Any], work: str,
             inherited: list[dict[str, Any]]) -> dict[str, Any]:
    """Apply valueFrom and `when`, scatter, and run the process."""
    reqs = requirements(proc, inherited) if step else {}
    js = js_context(reqs) if step else None
    if step and step.get("js") is not None:
        js = step["js"]
    scatter = step.get("scatter") or []
    out_ids = [o["id"] for o in proc.get("outputs", [])]
    if not scatter:
        return _one(step, proc, job, work, inherited, js, out_ids) or {k: None for k in out_ids}
    method = step.get("scatterMethod") or "dotproduct"
    lists = [job.get(s) or [] for s in scatter]
    if method == "dotproduct":
        if len({len(x) for x in lists}) > 1:
            raise CwlError("dotproduct scatter over lists of different lengths")
        combos = list(zip(*lists, strict=False))
    else:
        combos = list(itertools.product(*lists))
    results = []
    for i, combo in enumerate(combos):
        sub = dict(job)
        sub.update(dict(zip(scatter, combo, strict=True)))
        got = _one(step, proc, sub, os.path.join(work, f"scatter-{i}"), inherited, js, out_ids)
        results.append(got)
    if method == "nested_crossproduct":
        return {k: _nest([None if r is None else r.get(k) for r in results], [len(x) for x in lists]) for k in out_ids}
    return {k: [None if r is None else r.get(k) for r in results] for k in out_ids}


def _nest(flat: list[Any], shape: list[int]) -> Any:
    if len(shape) <= 1:
        return flat
    size = len(flat) // shape[0] if shape[0] else 0
    return [_nest(flat[i * size:(i + 1) * size], shape[1:]) for i in range(shape[0])]


def _one(step: Mapping[str, Any], proc: Mapping[str, Any], job: dict[str, Any], work: str,
         inherited: list[dict[str, Any]], js: list[str] | None, out_ids: list[str]) -> dict[str, Any] | None:
    if step:
        job = {k: _complete_files(v) for k, v in job.items()}
        for name, inp in step.get("in", {}).items():
            if inp.get("loadContents"):
                value: Any = job.get(name)
                for f in value if isinstance(value, list) else [value]:
                    if V.is_file(f) and f["class"] == "File" and "path" in f:
                        f["contents"] = load_contents(f["path"])
        ctx = Context(job, js=js)
        final = dict(job)
        for name, inp in step.get("in", {}).items():
            if "valueFrom" in inp:
                final[name] = evaluate(inp["valueFrom"], ctx, job.get(name))
        job = final
        if "when" in step:
            ok = evaluate(step["when"], Context(job, js=js))
            if not isinstance(ok, bool):
                raise CwlError(f"step {step.get('id')}: `when` gave {ok!r}, not a boolean")
            if not ok:
                return None
    os.makedirs(work, exist_ok=True)
    if proc.get("class") == "Workflow":
        return run_workflow(proc, job, work, inherited)
    return run_process(proc, job, work, None, inherited).outputs


def _complete_files(v: Any) -> Any:
    """Files with basename, nameroot, size... (what valueFrom expressions read)."""
    if isinstance(v, list):
        return [_complete_files(x) for x in v]
    if V.is_file(v) and ("path" in v or "location" in v):
        try:
            return V.file_fields(dict(v))
        except CwlError:
            return v
    if isinstance(v, dict):
        return {k: _complete_files(x) for k, x in v.items()}
    return v


def pack(result: Mapping[str, Any], archive: str) -> None:
    """Write the output object and every file it names into one tar (deterministic)."""
    names: dict[str, str] = {}
    os.makedirs(os.path.dirname(archive) or ".", exist_ok=True)
    tmp = archive + ".part"
    with tarfile.open(tmp, "w") as tar:
        obj = _arc(result, tar, names)
        data = json.dumps(obj, sort_keys=True).encode()
        info = tarfile.TarInfo(OBJECT_NAME)
        info.size, info.mtime, info.mode = len(data), 0, 0o644
        tar.addfile(info, io.BytesIO(data))
    os.replace(tmp, archive)


def _arc(v: Any, tar: tarfile.TarFile, names: dict[str, str], folder: str | None = None) -> Any:
    """`v` with its files added to `tar`, each in a folder of its own, except that secondary
    files go in their primary's folder (tools find them next to it)."""
    if isinstance(v, list):
        return [_arc(x, tar, names) for x in v]
    if not isinstance(v, dict):
        return v
    w = {k: _arc(x, tar, names) for k, x in v.items() if k not in ("listing", "secondaryFiles")}
    if V.is_file(v) and "path" in v:
        path = v["path"]
        name = names.get(path)
        if name is None:
            base = v.get("basename") or os.path.basename(path.rstrip("/"))  # an ExpressionTool may rename
            name = f"{folder or f'f{len(names)}'}/{base}"
            names[path] = name
            _add(tar, path, name)
        w["location"] = "arc:" + name
        for k in ("path", "dirname"):
            w.pop(k, None)
        if "secondaryFiles" in v:
            w["secondaryFiles"] = [_arc(s, tar, names, name.rsplit("/", 1)[0]) for s in v["secondaryFiles"]]
        if "listing" in v:
            w["listing"] = [_arc_inside(x, path, name) for x in v["listing"]]
    elif "secondaryFiles" in v or "listing" in v:
        for k in ("secondaryFiles", "listing"):
            if k in v:
                w[k] = _arc(v[k], tar, names)
    return w


def _arc_inside(v: dict[str, Any], top: str, name: str) -> dict[str, Any]:
    """A listing entry: already in the tar under the directory's own name."""
    w = {k: x for k, x in v.items() if k not in ("path", "dirname", "listing")}
    w["location"] = "arc:" + name + "/" + os.path.relpath(v["path"], top)
    if "listing" in v:
        w["listing"] = [_arc_inside(x, top, name) for x in v["listing"]]
    return w


def _add(tar: tarfile.TarFile, path: str, name: str) -> None:
    def clean(info: tarfile.TarInfo) -> tarfile.TarInfo:
        info.mtime, info.uid, info.gid, info.uname, info.gname = 0, 0, 0, "", ""
        return info

    tar.add(os.path.realpath(path), arcname=name, recursive=True, filter=clean)
