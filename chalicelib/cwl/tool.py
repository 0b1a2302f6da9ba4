"""Run one CWL CommandLineTool (or ExpressionTool) in a folder: fill in the job, build the
command line, run it, collect the output object. Standard library only: this is what a CWL
task's launcher runs when the task starts, wherever it is placed."""

from __future__ import annotations

import contextlib
import copy
import glob as globmod
import json
import math
import os
import shlex
import shutil
import subprocess
from collections.abc import Mapping
from decimal import Decimal
from typing import Any

from chalicelib.cwl import values as V
from chalicelib.cwl.errors import CwlError, Unsupported
from chalicelib.cwl.expr import Context, evaluate, single_expression

KNOWN_REQUIREMENTS = {
    "InlineJavascriptRequirement", "SchemaDefRequirement", "ShellCommandRequirement", "EnvVarRequirement",
    "InitialWorkDirRequirement", "ResourceRequirement", "DockerRequirement", "SoftwareRequirement",
    "NetworkAccess", "WorkReuse", "ToolTimeLimit", "LoadListingRequirement", "InplaceUpdateRequirement",
    "SubworkflowFeatureRequirement", "ScatterFeatureRequirement", "MultipleInputFeatureRequirement",
    "StepInputExpressionRequirement",
}
LOAD_CONTENTS_LIMIT = 64 * 1024


def requirements(proc: Mapping[str, Any], inherited: list[dict[str, Any]] | None = None) -> dict[str, dict[str, Any]]:
    """Requirement class -> requirement: hints, then inherited requirements, then the
    process's own (later wins). Unknown classes among requirements are Unsupported."""
    found: dict[str, dict[str, Any]] = {}
    for h in proc.get("hints", []) or []:
        if isinstance(h, dict) and "class" in h:
            found[V.short_class(h["class"])] = h
    for r in [*(inherited or []), *(proc.get("requirements", []) or [])]:
        cls = V.short_class(r.get("class", ""))
        if cls not in KNOWN_REQUIREMENTS:
            raise Unsupported(f"requirement {cls} is not supported")
        found[cls] = r
    return found


def js_context(reqs: Mapping[str, Any]) -> list[str] | None:
    r = reqs.get("InlineJavascriptRequirement")
    return None if r is None else list(r.get("expressionLib", []) or [])


def fill_job(inputs: list[dict[str, Any]], job: Mapping[str, Any], base: str | None, literal_dir: str,
             ctx_js: list[str] | None = None, load_listing: str | None = None) -> dict[str, Any]:
    """The job with defaults applied, Files completed and secondary files found; a value that
    does not fit its type is a CwlError."""
    filled: dict[str, Any] = {}
    for p in inputs:
        name = p["id"]
        value = job.get(name)
        if value is None and "default" in p:
            value = copy.deepcopy(p["default"])
            value = _complete(p["type"], value, base, literal_dir, default=True)
        else:
            value = _complete(p["type"], value, None if value is None else base, literal_dir)
        if not V.matches(p["type"], value):
            raise CwlError(f"input {name!r}: {json.dumps(value)[:200]} does not fit its type {json.dumps(p['type'])}")
        filled[name] = value
    ctx = Context(filled, js=ctx_js)
    for p in inputs:
        _secondary(p, filled[p["id"]], ctx)
        how = p.get("loadListing") or load_listing
        if how in ("shallow_listing", "deep_listing"):
            _list_dirs(filled[p["id"]], how == "deep_listing")
        if p.get("loadContents") or (p.get("inputBinding") or {}).get("loadContents"):
            for f in filled[p["id"]] if isinstance(filled[p["id"]], list) else [filled[p["id"]]]:
                if V.is_file(f) and f["class"] == "File":
                    f["contents"] = load_contents(f["path"])
    return filled


def _list_dirs(v: Any, deep: bool) -> None:
    """Fill in `listing` for the Directories in an input value (loadListing)."""
    if isinstance(v, list):
        for x in v:
            _list_dirs(x, deep)
    elif V.is_file(v) and v["class"] == "Directory":
        if "listing" not in v:
            v["listing"] = V.listing(v["path"], deep)
    elif isinstance(v, dict) and not V.is_file(v):
        for x in v.values():
            _list_dirs(x, deep)


def load_contents(path: str) -> str:
    """A file's first 64 KiB as text; a bigger file is an error (CWL's loadContents limit)."""
    with open(path, "rb") as fh:
        data = fh.read(LOAD_CONTENTS_LIMIT + 1)
    if len(data) > LOAD_CONTENTS_LIMIT:
        raise CwlError(f"loadContents: {path} is over 64 KiB")
    return data.decode("utf-8", "replace")


def _complete(t: Any, v: Any, base: str | None, literal_dir: str, default: bool = False) -> Any:
    if V.is_file(v):
        return V.file_fields(v, base, literal_dir)
    if isinstance(v, list):
        items = _items_of(t)
        return [_complete(items, x, base, literal_dir, default) for x in v]
    if isinstance(v, dict):
        rec = V.choose(t, v)
        fields = {f["name"]: f for f in rec.get("fields", [])} if isinstance(rec, dict) else {}
        out = {k: _complete(fields[k]["type"] if k in fields else "Any", x, base, literal_dir, default)
               for k, x in v.items()}
        for name, f in fields.items():
            if out.get(name) is None and "default" in f:
                out[name] = copy.deepcopy(f["default"])
            out.setdefault(name, None)
        return out
    return v


def _items_of(t: Any) -> Any:
    for x in t if isinstance(t, list) else [t]:
        if isinstance(x, dict) and x.get("type") == "array":
            return x["items"]
    return "Any"


def _secondary(p: Mapping[str, Any], value: Any, ctx: Context, required_check: bool = True) -> None:
    """Attach the secondary files of an input (also inside records and arrays)."""
    if value is None:
        return
    specs = p.get("secondaryFiles")
    t = V.choose(p.get("type"), value)
    if isinstance(value, list):
        items = t.get("items") if isinstance(t, dict) else "Any"
        for x in value:
            _secondary({"type": items, "secondaryFiles": specs} if specs else {"type": items}, x, ctx)
        return
    if isinstance(value, dict) and not V.is_file(value) and isinstance(t, dict) and t.get("type") == "record":
        for f in t.get("fields", []):
            _secondary(f, value.get(f["name"]), ctx)
        return
    if specs and V.is_file(value) and value["class"] == "File":
        have = {s["path"] for s in value.get("secondaryFiles", [])}
        found = list(value.get("secondaryFiles", []))
        for spec in _sec_specs(specs):
            for name, required in _sec_names(value, spec, ctx):
                path = name if os.path.isabs(name) else os.path.join(value["dirname"], name)
                if path in have:
                    continue
                if os.path.exists(path):
                    cls = "Directory" if os.path.isdir(path) else "File"
                    found.append(V.file_fields({"class": cls, "path": path}))
                    have.add(path)
                elif required:
                    raise CwlError(f"missing secondary file {path} of {value['path']}")
        value["secondaryFiles"] = found


def _sec_specs(specs: Any) -> list[dict[str, Any]]:
    out = []
    for s in specs if isinstance(specs, list) else [specs]:
        out.append(s if isinstance(s, dict) else {"pattern": s})
    return out


def _sec_names(primary: Mapping[str, Any], spec: Mapping[str, Any], ctx: Context,
               output: bool = False) -> list[tuple[str, bool]]:
    """(file name, required) for one secondaryFiles entry: a pattern (suffix, ^ strips an
    extension, ? optional) or an expression giving names (literal), Files or null."""
    pattern = spec["pattern"]
    required = spec.get("required")
    if required is None and output:
        required = False
    if isinstance(pattern, str) and V.has_expr(pattern):
        got = evaluate(pattern, ctx, primary)
        names = []
        for g in got if isinstance(got, list) else [got]:
            if isinstance(g, dict):
                names.append((g.get("path") or V.local_path(g["location"]), True if required is None else required))
            elif g is not None:
                names.append((str(g), True if required is None else bool(required)))
        return names
    got = pattern
    names = []
    for g in got if isinstance(got, list) else [got]:
        if g is None:
            continue
        if isinstance(g, dict):
            names.append((g.get("path") or V.local_path(g["location"]), True if required is None else required))
            continue
        pat = str(g)
        opt = pat.endswith("?")
        pat = pat.rstrip("?")
        req = (not opt) if required is None else bool(required)
        names.append((V.secondary_name(primary["basename"], pat), req))
    return names


# ---- the command line -------------------------------------------------------------------

def _key(pos: Any, tiebreak: Any) -> list[tuple[int, Any]]:
    return [(0, int(pos)), (0, tiebreak) if isinstance(tiebreak, int) else (1, str(tiebreak))]


def tostr(v: Any) -> str:
    if V.is_file(v):
        return str(v["path"])
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, float):  # decimals, never scientific notation; whole numbers without ".0"
        return str(int(v)) if v.is_integer() else format(Decimal(repr(v)), "f")
    if isinstance(v, dict | list):
        return json.dumps(v)
    return str(v)


def _flat(value: list[Any]) -> list[Any]:
    """An array's elements, nested arrays processed recursively (records have no text)."""
    out: list[Any] = []
    for x in value:
        if isinstance(x, list):
            out.extend(_flat(x))
        elif x is not None and not (isinstance(x, dict) and not V.is_file(x)):
            out.append(x)
    return out


class Arg:
    def __init__(self, text: str, quote: bool) -> None:
        self.text, self.quote = text, quote


def _emit(binding: Mapping[str, Any], value: Any, ctx: Context, has_item_bindings: bool) -> list[Arg]:
    quote = binding.get("shellQuote", True) is not False
    prefix = binding.get("prefix")
    separate = binding.get("separate", True) is not False
    if "valueFrom" in binding:
        value = evaluate(binding["valueFrom"], ctx, value)
    items: list[Any]
    if isinstance(value, list):
        sep = binding.get("itemSeparator")
        if sep is not None and value:
            items = [sep.join(tostr(x) for x in value)]
        elif "valueFrom" in binding or not has_item_bindings:
            if not value:
                return []
            head = [Arg(prefix, quote)] if prefix else []
            return head + [Arg(tostr(x), quote) for x in _flat(value)]
        else:
            return [Arg(prefix, quote)] if prefix and value else []
    elif V.is_file(value):
        items = [value]
    elif isinstance(value, dict) or value is True:
        return [Arg(prefix, quote)] if prefix else []
    elif value is False or value is None:
        return []
    else:
        items = [value]
    out: list[Arg] = []
    for x in items:
        if prefix is None:
            out.append(Arg(tostr(x), quote))
        elif separate:
            out += [Arg(prefix, quote), Arg(tostr(x), quote)]
        else:
            out.append(Arg(prefix + tostr(x), quote))
    return out


def _bind(t: Any, value: Any, binding: Mapping[str, Any] | None, key: list[Any], ctx: Context,
          out: list[tuple[list[Any], list[Arg]]]) -> None:
    """Collect (sort key, args) for one value and the bindings inside its type."""
    if value is None:
        return
    t = V.choose(t, value)
    item_bindings = False
    if isinstance(t, dict) and t.get("type") == "array" and isinstance(value, list):
        items_t = t["items"]
        inner = t.get("inputBinding") or _type_binding(items_t)
        if inner is not None or _has_nested(items_t):
            item_bindings = True
            for i, x in enumerate(value):
                b = inner if inner is not None else None
                pos = _position(b, ctx, x) if b else 0
                _bind(items_t, x, b, [*key, *_key(pos, i)], ctx, out)
    elif isinstance(t, dict) and t.get("type") == "record" and isinstance(value, dict):
        for f in t.get("fields", []):
            b = f.get("inputBinding")
            fv = value.get(f["name"])
            if b is not None:
                _bind(f["type"], fv, b, [*key, *_key(_position(b, ctx, fv), f["name"])], ctx, out)
            elif _has_nested(f["type"]):
                _bind(f["type"], fv, None, [*key, *_key(0, f["name"])], ctx, out)
    if binding is not None:
        out.append((key, _emit(binding, value, ctx, item_bindings)))


def _type_binding(t: Any) -> Mapping[str, Any] | None:
    for x in t if isinstance(t, list) else [t]:
        if isinstance(x, dict) and "inputBinding" in x:
            return x["inputBinding"]
    return None


def _has_nested(t: Any) -> bool:
    for x in t if isinstance(t, list) else [t]:
        if isinstance(x, dict):
            if "inputBinding" in x:
                return True
            if x.get("type") == "record" and any("inputBinding" in f or _has_nested(f["type"])
                                                 for f in x.get("fields", [])):
                return True
            if x.get("type") == "array" and _has_nested(x["items"]):
                return True
    return False


def _position(binding: Mapping[str, Any] | None, ctx: Context, self_value: Any) -> int:
    if not binding:
        return 0
    pos = evaluate(binding.get("position", 0), ctx, self_value)
    try:
        return int(pos or 0)
    except (TypeError, ValueError):
        raise CwlError(f"inputBinding position {pos!r} is not an integer") from None


def command_line(tool: Mapping[str, Any], job: Mapping[str, Any], ctx: Context) -> list[Arg]:
    base = tool.get("baseCommand", [])
    base = [base] if isinstance(base, str) else list(base or [])
    found: list[tuple[list[Any], list[Arg]]] = []
    for i, a in enumerate(tool.get("arguments", []) or []):
        if isinstance(a, str):
            found.append((_key(0, i), [Arg(tostr(evaluate(a, ctx)), True)]))
        else:
            b = dict(a)
            b.setdefault("valueFrom", None)
            found.append((_key(_position(a, ctx, None), i), _emit(b, None, ctx, False)))
    for p in tool.get("inputs", []):
        b = p.get("inputBinding")
        v = job.get(p["id"])
        if b is not None:
            _bind(p["type"], v, b, _key(_position(b, ctx, v), p["id"]), ctx, found)
        elif _has_nested(p["type"]):  # an unbound record's fields sort by their own positions
            _bind(p["type"], v, None, [], ctx, found)
    found.sort(key=lambda kv: kv[0])
    return [Arg(str(x), False) for x in base] + [a for _, args in found for a in args]


# ---- running ----------------------------------------------------------------------------

class Result:
    def __init__(self, outputs: dict[str, Any], exit_code: int) -> None:
        self.outputs, self.exit_code = outputs, exit_code


def runtime_of(reqs: Mapping[str, Any], outdir: str, tmpdir: str, ctx: Context) -> dict[str, Any]:
    rr = reqs.get("ResourceRequirement", {})

    def pick(lo: str, hi: str, default: float) -> float:
        v = rr.get(lo) if rr.get(lo) is not None else rr.get(hi)
        v = evaluate(v, ctx) if v is not None else default
        return float(v)

    return {"outdir": outdir, "tmpdir": tmpdir, "cores": math.ceil(pick("coresMin", "coresMax", 1)),
            "ram": math.ceil(pick("ramMin", "ramMax", 1024)),
            "outdirSize": math.ceil(pick("outdirMin", "outdirMax", 1024)),
            "tmpdirSize": math.ceil(pick("tmpdirMin", "tmpdirMax", 1024)), "exitCode": None}


def run_process(proc: Mapping[str, Any], job: Mapping[str, Any], workdir: str, base: str | None = None,
                inherited: list[dict[str, Any]] | None = None) -> Result:
    """Run `proc` (CommandLineTool or ExpressionTool) on `job` inside `workdir`."""
    reqs = requirements(proc, inherited)
    outdir, tmpdir, staged = (os.path.join(workdir, d) for d in ("out", "tmp", "staged"))
    for d in (outdir, tmpdir, staged):
        os.makedirs(d, exist_ok=True)
    js = js_context(reqs)
    listing = reqs.get("LoadListingRequirement", {}).get("loadListing")
    filled = fill_job(proc.get("inputs", []), job, base, staged, js, listing)
    ctx = Context(filled, js=js)
    ctx.runtime = runtime_of(reqs, outdir, tmpdir, ctx)
    if proc.get("class") == "ExpressionTool":
        got = evaluate(proc["expression"], ctx)
        if not isinstance(got, dict):
            raise CwlError("ExpressionTool's expression must give an object")
        return Result({o["id"]: _materialize(got.get(o["id"]), outdir) for o in proc.get("outputs", [])}, 0)
    if proc.get("class") != "CommandLineTool":
        raise Unsupported(f"class {proc.get('class')} cannot run as one task")
    _initial_workdir(reqs, ctx, outdir)
    args = command_line(proc, filled, ctx)
    shell = "ShellCommandRequirement" in reqs
    if shell:
        argv = ["/bin/sh", "-c", " ".join(shlex.quote(a.text) if a.quote else a.text for a in args)]
    else:
        argv = [a.text for a in args]
    if not argv:
        raise CwlError("the command line is empty (no baseCommand and no arguments)")
    env = {"HOME": outdir, "TMPDIR": tmpdir, "PATH": os.environ.get("PATH", os.defpath)}
    for e in reqs.get("EnvVarRequirement", {}).get("envDef", []) or []:
        env[e["envName"]] = tostr(evaluate(e["envValue"], ctx))
    streams = _streams(proc, ctx, outdir)
    limit = evaluate(reqs.get("ToolTimeLimit", {}).get("timelimit", 0), ctx)
    if not isinstance(limit, int | float) or isinstance(limit, bool) or limit < 0:
        raise CwlError(f"ToolTimeLimit timelimit must be a number of seconds >= 0, not {limit!r}")
    code = _spawn(argv, outdir, env, streams, float(limit) or None)
    ctx.runtime["exitCode"] = code
    success = proc.get("successCodes") or [0]
    if code not in success:
        raise CwlError(f"the command exited with code {code} ({' '.join(argv)[:500]})")
    return Result(collect(proc, ctx, outdir, streams), code)


def _materialize(v: Any, outdir: str) -> Any:
    """File and Directory literals (contents or listing, no location) written into `outdir`."""
    if isinstance(v, list):
        return [_materialize(x, outdir) for x in v]
    if V.is_file(v):
        src = v.get("path") or (V.local_path(v["location"], None, True) if "location" in v else None)
        if src and v.get("basename") and os.path.basename(src.rstrip("/")) != v["basename"]:  # renamed
            dest = os.path.join(outdir, v["basename"])
            if os.path.isdir(src):
                shutil.copytree(src, dest)
            else:
                shutil.copyfile(src, dest)
            v = {k: x for k, x in v.items() if k not in ("location", "dirname", "nameroot", "nameext")}
            v["path"] = dest
        return V.file_fields(v, None, outdir)
    if isinstance(v, dict):
        return {k: _materialize(x, outdir) for k, x in v.items()}
    return v


def _streams(proc: Mapping[str, Any], ctx: Context, outdir: str) -> dict[str, str | None]:
    out: dict[str, str | None] = {}
    for name in ("stdin", "stdout", "stderr"):
        v: Any = evaluate(proc.get(name), ctx) if proc.get(name) is not None else None
        out[name] = v["path"] if V.is_file(v) else v
    for o in proc.get("outputs", []):
        for name in ("stdout", "stderr"):
            if o.get("type") == name and out[name] is None:
                out[name] = f"{name}-{os.urandom(6).hex()}"
    for name in ("stdout", "stderr"):
        v = out[name]
        if v is not None and (os.path.isabs(v) or ".." in v.split("/")):
            raise CwlError(f"{name} must be a file name inside the output folder, not {v!r}")
    return out


def _spawn(argv: list[str], cwd: str, env: dict[str, str], streams: Mapping[str, str | None],
           timeout: float | None = None) -> int:
    """Run the tool; stdout/stderr not captured go to the task's log."""
    with contextlib.ExitStack() as stack:
        stdin: Any = subprocess.DEVNULL
        if streams.get("stdin"):
            stdin = stack.enter_context(open(str(streams["stdin"]), "rb"))
        outs: list[Any] = []
        for name in ("stdout", "stderr"):
            target = streams.get(name)
            if target:
                path = os.path.join(cwd, target)
                os.makedirs(os.path.dirname(path), exist_ok=True)
                outs.append(stack.enter_context(open(path, "wb")))
            else:
                outs.append(None)
        try:
            done = subprocess.run(argv, cwd=cwd, env=env, stdin=stdin, stdout=outs[0], stderr=outs[1], check=False,
                                  timeout=timeout)
        except subprocess.TimeoutExpired:
            raise CwlError(f"the command ran past its ToolTimeLimit of {timeout:g} s") from None
        except OSError as exc:
            raise CwlError(f"could not start {argv[0]!r}: {exc}") from exc
        return done.returncode


def _initial_workdir(reqs: Mapping[str, Any], ctx: Context, outdir: str) -> None:
    req = reqs.get("InitialWorkDirRequirement")
    if not req:
        return
    listing = req.get("listing", [])
    entries = evaluate(listing, ctx) if isinstance(listing, str) else listing
    for entry in entries or []:
        value = evaluate(entry, ctx) if isinstance(entry, str) else entry
        for item in value if isinstance(value, list) else [value]:
            _stage_entry(item, ctx, outdir)


def _stage_entry(item: Any, ctx: Context, outdir: str) -> None:
    if item is None:
        return
    if isinstance(item, dict) and "entry" in item:
        name = evaluate(item.get("entryname"), ctx) if item.get("entryname") else None
        raw = item["entry"]
        content = evaluate(raw, ctx, strip_whitespace=False) if isinstance(raw, str) else raw
        if isinstance(raw, str) and single_expression(raw):  # one expression: a non-string is dumped as JSON
            got = evaluate(raw.strip(), ctx)
            if got is not None and not isinstance(got, str) and not V.is_file(got) and not (
                    isinstance(got, list) and got and all(V.is_file(x) or x is None for x in got)):
                content = json.dumps(got) + raw[len(raw.rstrip()):]
        if content is None:
            return
        if V.is_file(content) or (isinstance(content, list) and all(V.is_file(x) or x is None for x in content)):
            for f in content if isinstance(content, list) else [content]:
                if f is not None:
                    _copy_in(f, outdir, name if not isinstance(content, list) else None, item.get("writable", False))
            return
        if name is None:
            raise CwlError("an InitialWorkDir entry that is not a File needs an entryname")
        if not isinstance(content, str):
            content = json.dumps(content)
        dest = name if os.path.isabs(name) else os.path.join(outdir, name)
        os.makedirs(os.path.dirname(dest), exist_ok=True)
        with open(dest, "w", encoding="utf-8") as fh:
            fh.write(content)
        return
    if V.is_file(item):
        _copy_in(item, outdir, None, True)


def _copy_in(f: dict[str, Any], outdir: str, name: str | None, writable: bool) -> None:
    """Stage a File or Directory into the output folder; `f` (often the very object in
    `inputs`) then names the staged copy, as the tool sees it."""
    if "path" not in f and "location" not in f:  # a literal: written at its entryname
        if f["class"] == "Directory":
            dest = os.path.join(outdir, name or f.get("basename") or "dir")
            os.makedirs(dest, exist_ok=True)
            for item in f.get("listing", []) or []:
                _copy_in(item, dest, None, writable)
            f.update(V.file_fields({"class": "Directory", "path": dest}))
            return
        if name:
            f = {**f, "basename": os.path.basename(name)}
            literal_dir = os.path.join(outdir, os.path.dirname(name))
        else:
            literal_dir = outdir
        f.update(V.file_fields(dict(f), None, literal_dir))
        return
    src = f.get("path") or V.local_path(f["location"])
    dest = name if name and os.path.isabs(name) else os.path.join(outdir, name or f.get("basename")
                                                                  or os.path.basename(src))
    os.makedirs(os.path.dirname(dest), exist_ok=True)
    if os.path.isdir(src):
        shutil.copytree(src, dest, dirs_exist_ok=True)
    elif writable:
        shutil.copyfile(src, dest)
    elif not os.path.exists(dest):
        os.symlink(src, dest)
    secondary = f.get("secondaryFiles")
    f.update(V.file_fields({"class": f["class"], "path": dest}))
    if secondary:  # they stay beside their primary
        for sec in secondary:
            _copy_in(sec, os.path.dirname(dest), None, writable)
        f["secondaryFiles"] = secondary


# ---- outputs ----------------------------------------------------------------------------

def collect(proc: Mapping[str, Any], ctx: Context, outdir: str, streams: Mapping[str, str | None]) -> dict[str, Any]:
    custom = os.path.join(outdir, "cwl.output.json")
    if os.path.exists(custom):
        with open(custom, encoding="utf-8") as fh:
            got = json.load(fh)
        return {k: _resolve_locations(v, outdir) for k, v in got.items()}
    out: dict[str, Any] = {}
    for o in proc.get("outputs", []):
        out[o["id"]] = _collect_one(o, ctx, outdir, streams)
        if not V.matches(o["type"], out[o["id"]]):
            raise CwlError(f"output {o['id']!r}: {json.dumps(out[o['id']])[:200]} does not fit its type")
    return out


def _resolve_locations(v: Any, outdir: str) -> Any:
    if isinstance(v, list):
        return [_resolve_locations(x, outdir) for x in v]
    if V.is_file(v):
        f = dict(v)
        if "path" in f and not os.path.isabs(f["path"]):
            f["path"] = os.path.join(outdir, f["path"])
        if "path" not in f and "location" in f:
            f["path"] = V.local_path(f["location"], outdir)
        f.pop("location", None)
        if "secondaryFiles" in f:
            f["secondaryFiles"] = [_resolve_locations(s, outdir) for s in f["secondaryFiles"]]
        return V.file_fields(f, outdir, outdir)
    if isinstance(v, dict):
        return {k: _resolve_locations(x, outdir) for k, x in v.items()}
    return v


def _collect_one(o: Mapping[str, Any], ctx: Context, outdir: str, streams: Mapping[str, str | None]) -> Any:
    t = o.get("type")
    if t in ("stdout", "stderr"):
        return V.file_fields({"class": "File", "path": os.path.join(outdir, streams[t] or "")})
    binding = o.get("outputBinding")
    if binding is None:
        if isinstance(t, dict) and t.get("type") == "record":
            return {f["name"]: _collect_one({**f, "id": f["name"]}, ctx, outdir, streams) for f in t["fields"]}
        return None
    files: list[dict[str, Any]] = []
    if "glob" in binding:
        globs = evaluate(binding["glob"], ctx)
        for g in globs if isinstance(globs, list) else [globs]:
            if g is None:
                continue
            if V.is_file(g):
                g = g["path"]
            pattern = g if os.path.isabs(g) else os.path.join(outdir, g)
            for path in sorted(globmod.glob(pattern)):
                _inside(path, outdir, ctx)
                cls = "Directory" if os.path.isdir(path) else "File"
                f = V.file_fields({"class": cls, "path": path})
                if cls == "Directory":
                    f["listing"] = V.listing(path)
                files.append(f)
    if binding.get("loadContents"):
        for f in files:
            if f["class"] == "File":
                f["contents"] = load_contents(f["path"])
    value: Any = files
    if "outputEval" in binding:
        value = evaluate(binding["outputEval"], ctx, files)
    else:
        single = V.choose(t, files[0] if len(files) == 1 else None)
        wants_list = any(isinstance(x, dict) and x.get("type") == "array" for x in (t if isinstance(t, list) else [t]))
        if not wants_list:
            if not files:
                value = None
            elif len(files) == 1 or single in ("File", "Directory"):
                value = files[0]
    _output_secondary(o, value, ctx)
    if "format" in o:
        for f in value if isinstance(value, list) else [value]:
            if V.is_file(f):
                f["format"] = evaluate(o["format"], ctx, f)
    return value


def _inside(path: str, outdir: str, ctx: Context) -> None:
    """An output must be in the output folder (a symlink may lead to one of the inputs)."""
    real, top = os.path.realpath(path), os.path.realpath(outdir)
    if real == top or real.startswith(top + os.sep):
        return
    inputs: set[str] = set()
    _input_paths(ctx.inputs, inputs)
    if not any(real == p or real.startswith(p + os.sep) for p in inputs):
        raise CwlError(f"output {path} is outside the output folder (it leads to {real})")


def _input_paths(v: Any, out: set[str]) -> None:
    if isinstance(v, list):
        for x in v:
            _input_paths(x, out)
    elif isinstance(v, dict):
        if V.is_file(v) and "path" in v:
            out.add(os.path.realpath(v["path"]))
        for x in v.values():
            _input_paths(x, out)


def _output_secondary(o: Mapping[str, Any], value: Any, ctx: Context) -> None:
    specs = o.get("secondaryFiles")
    if not specs or value is None:
        return
    for f in value if isinstance(value, list) else [value]:
        if not (V.is_file(f) and f["class"] == "File"):
            continue
        extra = list(f.get("secondaryFiles", []))
        for spec in _sec_specs(specs):
            for name, required in _sec_names(f, spec, ctx, output=True):
                path = name if os.path.isabs(name) else os.path.join(f["dirname"], name)
                if os.path.exists(path):
                    cls = "Directory" if os.path.isdir(path) else "File"
                    extra.append(V.file_fields({"class": cls, "path": path}))
                elif required:
                    raise CwlError(f"missing output secondary file {path}")
        f["secondaryFiles"] = extra
