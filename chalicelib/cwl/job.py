"""A CWL job in and its output object out: read the job's input values, load and plan the
process (cwl/load.py, cwl/plan.py), and after the run assemble the output object and place its
files. The CWL workflow format (workflow/formats/cwl.py) and the `updraft-cwl-runner` command
(cwl/runner.py) both use it; it reads no runtime, so the format stays below the backends.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tarfile
import tempfile
from collections.abc import Mapping
from typing import Any

from chalicelib.cwl import launch
from chalicelib.cwl import values as V
from chalicelib.cwl.errors import CwlError


def read_job(path: str | None) -> tuple[dict[str, Any], str | None]:
    if path is None:
        return {}, None
    try:
        with open(path, encoding="utf-8") as fh:
            text = fh.read()
    except OSError as exc:
        raise CwlError(f"cannot read the job {path}: {exc.strerror or exc}") from None
    try:
        data = json.loads(text)
    except json.JSONDecodeError:
        try:
            import yaml
        except ImportError:
            raise CwlError(f"{path}: not JSON, and reading YAML needs PyYAML") from None
        try:
            data = yaml.safe_load(text)
        except yaml.YAMLError as exc:
            raise CwlError(f"{path}: not valid YAML or JSON: {exc}") from None
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise CwlError(f"{path}: a job must be an object mapping input names to values")
    return data, os.path.dirname(os.path.abspath(path))


def load_and_plan(process: str, job_path: str | None) -> tuple[Any, Any]:
    from chalicelib.cwl.load import expand_formats, load_process
    from chalicelib.cwl.plan import plan

    proc = load_process(process)
    job, base = read_job(job_path)
    job = expand_formats(job, proc.get("$namespaces", {}))
    name = os.path.splitext(os.path.basename(process.split("#", 1)[0]))[0]
    return plan(proc, job, base, name)


def output_object(rt: Any, run_id: str, final: Any, outdir: str) -> dict[str, Any]:
    """Assemble the run's output object and move its files into `outdir`."""
    from chalicelib.runner.keys import data_key

    unpacked: dict[str, dict[str, Any]] = {}
    scratch = tempfile.mkdtemp(prefix="cwl-final-", dir=outdir)
    try:
        for tid, archive in final.archives.items():
            if rt is None or not rt.blobs.exists(data_key(run_id, archive)):
                continue
            dest = os.path.join(scratch, tid)
            os.makedirs(dest)
            local = os.path.join(scratch, tid + ".tar")
            rt.blobs.get_file(data_key(run_id, archive), local)
            with tarfile.open(local) as tar:
                launch.extract(tar, dest)
            with open(os.path.join(dest, launch.OBJECT_NAME), encoding="utf-8") as fh:
                unpacked[tid] = launch._unarc(json.load(fh), dest)
        values = _originals(final.values, final.origins)
        out: dict[str, Any] = {}
        for name, entry in final.outputs.items():
            got = [launch._source_value(s, values, unpacked) for s in entry["sources"]]
            value = launch.merge(got, entry.get("linkMerge"), entry.get("multiple", False))
            out[name] = launch.pick(value, entry.get("pickValue"), name)
        placed: dict[str, str] = {}
        return {k: _place(v, outdir, placed) for k, v in out.items()}
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


def _originals(v: Any, origins: Mapping[str, str]) -> Any:
    if isinstance(v, list):
        return [_originals(x, origins) for x in v]
    if isinstance(v, dict):
        w = {k: _originals(x, origins) for k, x in v.items()}
        loc = w.get("location")
        if isinstance(loc, str) and loc in origins:
            src = origins[loc]
            w["path"], w["location"] = src, "file://" + src
        return w
    return v


def _place(v: Any, outdir: str, placed: dict[str, str]) -> Any:
    if isinstance(v, list):
        return [_place(x, outdir, placed) for x in v]
    if not isinstance(v, dict):
        return v
    if not (V.is_file(v) and "path" in v):
        return {k: _place(x, outdir, placed) for k, x in v.items()}
    src = v["path"]
    dest = placed.get(src)
    if dest is None:
        name = v.get("basename") or os.path.basename(src.rstrip("/"))
        dest = os.path.join(outdir, name)
        n = 1
        while os.path.exists(dest):
            n += 1
            dest = os.path.join(outdir, f"{n}", name)
        os.makedirs(os.path.dirname(dest), exist_ok=True)
        if os.path.isdir(src):
            shutil.copytree(src, dest, symlinks=False)
        else:
            shutil.copyfile(src, dest)
        placed[src] = dest
    return _describe(v, dest, outdir, placed)


def _describe(v: Mapping[str, Any], dest: str, outdir: str, placed: dict[str, str]) -> dict[str, Any]:
    w: dict[str, Any] = {k: x for k, x in v.items() if k not in ("path", "dirname", "listing", "secondaryFiles")}
    w["location"], w["path"], w["basename"] = "file://" + dest, dest, os.path.basename(dest)
    if v["class"] == "File":
        w["size"] = os.path.getsize(dest)
        w["checksum"] = "sha1$" + _sha1(dest)
        root, ext = os.path.splitext(w["basename"])
        w["nameroot"], w["nameext"] = root, ext
        if "secondaryFiles" in v:
            w["secondaryFiles"] = [_place(s, os.path.dirname(dest), placed) for s in v["secondaryFiles"]]
    else:
        w["listing"] = [_describe(x, os.path.join(dest, x.get("basename") or ""), outdir, placed)
                        for x in _listing_of(dest)]
    return w


def _listing_of(path: str) -> list[dict[str, Any]]:
    return [{"class": "Directory" if os.path.isdir(os.path.join(path, n)) else "File", "basename": n}
            for n in sorted(os.listdir(path))]


def _sha1(path: str) -> str:
    h = hashlib.sha1(usedforsecurity=False)  # CWL's checksum is SHA-1 by definition, not a security use
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()
