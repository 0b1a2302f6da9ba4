"""CWL values: type checks, File objects (path, basename, nameroot, ...), secondary files,
defaults filled in. Standard library only (runs inside tasks)."""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from typing import Any
from urllib.parse import unquote, urlparse

from chalicelib.cwl.errors import CwlError

NUMBERS = {"int", "long", "float", "double"}


def is_file(v: Any) -> bool:
    return isinstance(v, Mapping) and v.get("class") in ("File", "Directory")


def type_name(t: Any) -> str:
    return t.get("type", "") if isinstance(t, dict) else str(t)


def matches(t: Any, v: Any) -> bool:
    """Does value `v` fit type `t`?"""
    if isinstance(t, list):
        return any(matches(x, v) for x in t)
    if isinstance(t, dict):
        kind = t.get("type")
        if kind == "array":
            return isinstance(v, list) and all(matches(t["items"], x) for x in v)
        if kind == "record":
            return isinstance(v, Mapping) and not is_file(v) and all(
                matches(f["type"], v.get(f["name"])) for f in t.get("fields", []))
        if kind == "enum":
            return isinstance(v, str) and v in t.get("symbols", [])
        return matches(kind, v)
    if t == "null":
        return v is None
    if t == "Any":
        return v is not None
    if t == "boolean":
        return isinstance(v, bool)
    if t in ("int", "long"):
        return isinstance(v, int) and not isinstance(v, bool)
    if t in ("float", "double"):
        return isinstance(v, int | float) and not isinstance(v, bool)
    if t == "string":
        return isinstance(v, str)
    if t in ("File", "Directory"):
        return isinstance(v, Mapping) and v.get("class") == t
    if t in ("stdout", "stderr"):
        return isinstance(v, Mapping) and v.get("class") == "File"
    return False


def choose(t: Any, v: Any) -> Any:
    """The branch of union `t` that `v` fits (t itself when not a union)."""
    if isinstance(t, list):
        for x in t:
            if matches(x, v):
                return x
        return t[0] if t else "null"
    return t


def optional(t: Any) -> bool:
    return matches(t, None)


def local_path(location: str, base: str | None = None, uri: bool = False) -> str:
    """The local path of a `location` (a URI: %-escapes decoded when `uri`) or `path`."""
    if location.startswith("file:"):
        return unquote(urlparse(location).path)
    if "://" in location:
        raise CwlError(f"remote location {location!r} is not supported; use local files")
    if uri:
        location = unquote(location)
    return location if os.path.isabs(location) or base is None else os.path.join(base, location)


def file_fields(f: dict[str, Any], base: str | None = None, literal_dir: str | None = None) -> dict[str, Any]:
    """Complete a File/Directory object: path, location, basename, nameroot, nameext, dirname,
    size. A File literal (contents, no location) is written into `literal_dir`."""
    f = dict(f)
    if "path" not in f and "location" not in f:
        if f.get("class") == "File" and "contents" in f and literal_dir is not None:
            os.makedirs(literal_dir, exist_ok=True)
            name = f.get("basename") or f"literal-{abs(hash(f['contents'])) % 10**8}"
            dest = _unique(os.path.join(literal_dir, name))
            with open(dest, "w", encoding="utf-8") as fh:
                fh.write(f["contents"])
            f["path"] = dest
        elif f.get("class") == "Directory" and "listing" in f and literal_dir is not None:
            dest = _unique(os.path.join(literal_dir, f.get("basename") or "dir"))
            os.makedirs(dest)
            f["path"] = dest
            f["listing"] = [_place(x, dest, base, literal_dir) for x in f["listing"]]
        else:
            raise CwlError(f"a {f.get('class')} without location or path: {f}")
    path = f["path"] if "path" in f else local_path(f["location"], base, uri=True)
    path = os.path.abspath(path)
    f["path"], f["location"] = path, "file://" + path
    if not os.path.exists(path):
        raise CwlError(f"input {f.get('class')} {path} does not exist")
    f["basename"] = os.path.basename(path.rstrip("/"))
    f["dirname"] = os.path.dirname(path)
    if f["class"] == "File":
        root, ext = os.path.splitext(f["basename"])
        if root.startswith(".") and not ext:
            root, ext = f["basename"], ""
        f["nameroot"], f["nameext"] = root, ext
        f["size"] = os.path.getsize(path)
        if "secondaryFiles" in f:
            f["secondaryFiles"] = [file_fields(s, base, literal_dir) for s in f["secondaryFiles"]]
    elif "listing" in f:
        f["listing"] = [file_fields(x, base, literal_dir) for x in f["listing"]]
    return f


def _place(item: dict[str, Any], dest: str, base: str | None, literal_dir: str) -> dict[str, Any]:
    """Put one entry of a literal Directory's listing into `dest`."""
    import shutil

    if "path" not in item and "location" not in item:
        return file_fields(item, base, dest)
    src = item["path"] if "path" in item else local_path(item["location"], base)
    target = os.path.join(dest, item.get("basename") or os.path.basename(src))
    if os.path.isdir(src):
        shutil.copytree(src, target)
    else:
        shutil.copyfile(src, target)
    return file_fields({"class": item["class"], "path": target}, base, literal_dir)


def _unique(path: str) -> str:
    if not os.path.exists(path):
        return path
    n = 2
    while os.path.exists(f"{path}.{n}"):
        n += 1
    os.makedirs(f"{path}.{n}")
    return os.path.join(f"{path}.{n}", os.path.basename(path))


def secondary_name(primary: str, pattern: str) -> str:
    while pattern.startswith("^"):
        pattern = pattern[1:]
        primary = os.path.splitext(primary)[0]
    return primary + pattern


def listing(path: str, deep: bool = True) -> list[dict[str, Any]]:
    out = []
    for name in sorted(os.listdir(path)):
        full = os.path.join(path, name)
        if os.path.isdir(full):
            d: dict[str, Any] = {"class": "Directory", "path": full, "location": "file://" + full, "basename": name}
            if deep:
                d["listing"] = listing(full, deep)
            out.append(d)
        else:
            out.append(file_fields({"class": "File", "path": full}))
    return out


def short_class(cls: str) -> str:
    return cls.rsplit("#", 1)[-1].rsplit("/", 1)[-1]


def has_expr(text: str) -> bool:
    return "$(" in text or "${" in text


_UNSAFE = re.compile(r"[^A-Za-z0-9_.-]+")


def safe_id(text: str) -> str:
    """A step name as a task id (and a folder name)."""
    return _UNSAFE.sub("_", text).strip("_") or "step"
