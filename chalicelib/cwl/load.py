"""Read CWL documents with cwl-utils and turn them into plain, self-contained dicts.

The dicts use short names (`inputs: [{id: "reads", ...}]`, sources as "step/out" or an input
name), named types (SchemaDefRequirement) inlined, and `run` replaced by the loaded process, so
the task side needs nothing but the standard library. Problems come out as FormatError (the
document, the field, what to do) or Unsupported.
"""

from __future__ import annotations

import os
from typing import Any
from urllib.parse import unquote, urlparse

from chalicelib.cwl.errors import Unsupported
from chalicelib.errors import FormatError, Problem

PROCESS_CLASSES = ("CommandLineTool", "Workflow", "ExpressionTool", "Operation")


def uri_of(path: str) -> str:
    if "://" in path:
        return path
    base, _, frag = path.partition("#")
    uri = "file://" + os.path.abspath(base)
    return uri + ("#" + frag if frag else "")


def path_of(uri: str) -> str:
    parsed = urlparse(uri)
    return unquote(parsed.path) if parsed.scheme == "file" else uri


def shortname(uri: str) -> str:
    frag = uri.split("#", 1)[1] if "#" in uri else uri.rstrip("/").rsplit("/", 1)[-1]
    return frag.rsplit("/", 1)[-1]


def load_process(path: str) -> dict[str, Any]:
    """The process at `path` (optionally path#id) as a normalized plain dict."""
    try:
        from cwl_utils.parser import load_document_by_uri, save
    except ImportError as exc:  # pragma: no cover - the cwl extra is not installed
        raise Unsupported("reading CWL needs cwl-utils: pip install 'updraft[cwl]'") from exc
    uri = uri_of(path)
    try:
        doc = load_document_by_uri(uri)
    except Exception as exc:
        raise FormatError([Problem(_first_lines(str(exc)))], path) from None
    if isinstance(doc, list):
        main = next((d for d in doc if str(getattr(d, "id", "")).endswith("#main")), None)
        if main is None:
            raise FormatError([Problem("a $graph without a process named #main; name one with FILE#id")], path)
        doc = main
    saved = save(doc, relative_uris=False)
    namespaces = dict(getattr(getattr(doc, "loadingOptions", None), "namespaces", None) or {})
    proc = expand_formats(_normalize(saved, path, {}), namespaces)
    proc["$namespaces"] = namespaces
    return proc


def expand_formats(v: Any, namespaces: dict[str, str]) -> Any:
    """`format: edam:format_1929` with the document's $namespaces expanded."""
    if isinstance(v, list):
        return [expand_formats(x, namespaces) for x in v]
    if not isinstance(v, dict):
        return v
    out = {k: expand_formats(x, namespaces) for k, x in v.items()}
    fmt = out.get("format")
    if isinstance(fmt, str) and "$(" not in fmt and "${" not in fmt:
        prefix, sep, rest = fmt.partition(":")
        if sep and prefix in namespaces:
            out["format"] = namespaces[prefix] + rest
    return out


def _first_lines(text: str, n: int = 12) -> str:
    lines = [ln for ln in text.splitlines() if ln.strip()]
    return "\n".join(lines[:n]) + ("\n..." if len(lines) > n else "")


def _normalize(proc: dict[str, Any], path: str, types: dict[str, Any]) -> dict[str, Any]:
    cls = proc.get("class")
    if cls not in PROCESS_CLASSES:
        raise FormatError([Problem(f"class {cls!r} is not a CWL process", field="class")], path)
    named = dict(types)
    for req in [*proc.get("requirements", []), *proc.get("hints", [])]:
        if isinstance(req, dict) and req.get("class") == "SchemaDefRequirement":
            for t in req.get("types", []):
                named[t["name"]] = t
    for req in proc.get("requirements", []) or []:
        if isinstance(req, dict) and req.get("class") == "SchemaDefRequirement":
            req["types"] = [_type(t, named) for t in req.get("types", [])]
    out = dict(proc)
    out["inputs"] = [_param(p, named, path, "inputs") for p in proc.get("inputs", [])]
    for p in out["inputs"]:  # `type: stdin`: a File that is the tool's standard input
        if p.get("type") == "stdin":
            p["type"] = "File"
            out["stdin"] = f"$(inputs.{p['id']}.path)"
    out["outputs"] = [_param(p, named, path, "outputs") for p in proc.get("outputs", [])]
    if cls == "Workflow":
        steps = {shortname(str(s["id"])) for s in proc.get("steps", [])}
        for o in out["outputs"]:
            if "outputSource" in o:
                o["outputSource"] = _sources(o["outputSource"], steps)
        out["steps"] = [_step(s, steps, path, named) for s in proc.get("steps", [])]
    return out


PRIMITIVES = {"null", "boolean", "int", "long", "float", "double", "string", "File", "Directory", "Any",
              "stdout", "stderr", "stdin"}


def _param(p: dict[str, Any], named: dict[str, Any], path: str, where: str) -> dict[str, Any]:
    q = dict(p)
    q["id"] = shortname(str(p.get("id", p.get("name", ""))))
    if "type" in q:
        q["type"] = _type(q["type"], named)
        unknown = _unknown_types(q["type"])
        if unknown:
            what = (f"unknown type {shortname(unknown)!r}: use a CWL type ({', '.join(sorted(PRIMITIVES))}), "
                    "a record, enum or array, or define it with SchemaDefRequirement")
            raise FormatError([Problem(what, field=f"{where}.{q['id']}.type")], path)
    return q


def _unknown_types(t: Any) -> str | None:
    if isinstance(t, str):
        return None if t in PRIMITIVES else t
    if isinstance(t, list):
        return next((u for u in map(_unknown_types, t) if u), None)
    if isinstance(t, dict):
        kind = t.get("type")
        if kind == "array":
            return _unknown_types(t.get("items"))
        if kind == "record":
            return next((u for u in (_unknown_types(f.get("type")) for f in t.get("fields", [])) if u), None)
        if kind == "enum":
            return None
        return _unknown_types(kind)
    return None


def _type(t: Any, named: dict[str, Any], seen: frozenset[str] = frozenset()) -> Any:
    if isinstance(t, str):
        if t in named and t not in seen:
            return _type(named[t], named, seen | {t})
        return t
    if isinstance(t, list):
        return [_type(x, named, seen) for x in t]
    if isinstance(t, dict):
        q = dict(t)
        kind = q.get("type")
        if kind == "array":
            q["items"] = _type(q["items"], named, seen)
        elif kind == "record":
            q["fields"] = [{**f, "name": shortname(str(f["name"])), "type": _type(f["type"], named, seen)}
                           for f in q.get("fields", [])]
        elif kind == "enum":
            q["symbols"] = [shortname(str(s)) for s in q.get("symbols", [])]
        return q
    return t


def _sources(src: Any, steps: set[str]) -> Any:
    """A source as "STEP/OUTPUT" or "INPUT" (whatever the document's ids were nested in)."""
    if isinstance(src, list):
        return [_sources(s, steps) for s in src]
    frag = str(src).split("#", 1)[1] if "#" in str(src) else str(src)
    parts = frag.split("/")
    if len(parts) >= 2 and parts[-2] in steps:
        return f"{parts[-2]}/{parts[-1]}"
    return parts[-1]


def _step(s: dict[str, Any], steps: set[str], path: str, named: dict[str, Any]) -> dict[str, Any]:
    q = dict(s)
    q["id"] = shortname(str(s["id"]))
    q["in"] = []
    for i in s.get("in", []):
        j = dict(i)
        j["id"] = shortname(str(i["id"]))
        if "source" in j:
            j["source"] = _sources(j["source"], steps)
        q["in"].append(j)
    q["out"] = [shortname(str(o["id"] if isinstance(o, dict) else o)) for o in s.get("out", [])]
    run = s.get("run")
    if isinstance(run, str):
        q["run"] = load_process(run)
    elif isinstance(run, dict):
        q["run"] = _normalize(run, path, named)
    for key in ("scatter",):
        if key in q:
            q[key] = [shortname(str(x)) for x in (q[key] if isinstance(q[key], list) else [q[key]])]
    return q
