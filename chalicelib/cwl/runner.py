"""`updraft-cwl-runner`: the standard cwl-runner interface over Updraft's local runtime.

    updraft-cwl-runner [--outdir DIR] [--quiet] [--workdir DIR] PROCESS.cwl [JOB.yml]

Prints the output object (JSON) on stdout; exit 0 on success, 33 for an unsupported
feature, 1 for a permanent failure (an invalid document or job, a failed step).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import shutil
import sys
import tarfile
import tempfile
from collections.abc import Mapping, Sequence
from typing import Any

from chalicelib.cwl import launch
from chalicelib.cwl import values as V
from chalicelib.cwl.errors import UNSUPPORTED_EXIT, CwlError, Unsupported
from chalicelib.engine.states import TaskState
from chalicelib.errors import UpdraftError

PERMANENT_FAILURE = 1


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
                tar.extractall(dest, filter="data")
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


def run(process: str, job_path: str | None, outdir: str, workdir: str | None, quiet: bool) -> dict[str, Any]:
    from chalicelib.backends.local.runtime import LocalRuntime, RuntimeOptions
    from chalicelib.engine.states import RunState

    wf, final = load_and_plan(process, job_path)
    if not wf.tasks:  # a workflow without steps: its outputs come from its inputs
        os.makedirs(outdir, exist_ok=True)
        return output_object(None, "", final, outdir)
    own = workdir is None
    work = workdir or tempfile.mkdtemp(prefix="updraft-cwl-")
    try:
        opts = RuntimeOptions()
        if own:
            opts.memoize = False
        with LocalRuntime(work, opts) as rt:
            record = rt.submit(wf, None, process)
            record = rt.run(record.run_id)
            if record.state != RunState.SUCCEEDED:
                _explain_failure(rt, record.run_id, quiet)
            os.makedirs(outdir, exist_ok=True)
            return output_object(rt, record.run_id, final, outdir)
    finally:
        if own:
            shutil.rmtree(work, ignore_errors=True)


def _explain_failure(rt: Any, run_id: str, quiet: bool) -> None:
    unsupported = False
    for t in rt.store.iter_tasks(run_id):
        if t.state is TaskState.SUCCEEDED:
            continue
        tail = ((t.result.log_tail if t.result is not None else None) or "").strip()
        if (t.result is not None and t.result.exit_code == UNSUPPORTED_EXIT) or "cwl: unsupported:" in tail:
            unsupported = True
        if tail:
            sys.stderr.write(f"task {t.task_id} {t.state.value}: {tail[-2000:]}\n")
    if unsupported:
        raise Unsupported("a step needs a feature this runner does not support (see above)")
    raise CwlError("the run failed (see the task logs above)")


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="updraft-cwl-runner", description="Run a CWL v1.2 process with Updraft.")
    p.add_argument("--outdir", default=os.getcwd(), help="where the output files go (default: here)")
    p.add_argument("--quiet", action="store_true", help="only errors on stderr")
    p.add_argument("--workdir", default=None, help="Updraft work dir (default: a temporary one, removed after)")
    p.add_argument("--version", action="version", version="updraft-cwl-runner 0.1 (CWL v1.2)")
    p.add_argument("process", help="the CWL document (FILE or FILE#id)")
    p.add_argument("job", nargs="?", help="the job: input values (JSON or YAML)")
    return p


def main(argv: Sequence[str] | None = None) -> int:
    args, _unknown = build_parser().parse_known_args(argv)
    try:
        out = run(args.process, args.job, os.path.abspath(args.outdir), args.workdir, args.quiet)
    except Unsupported as exc:
        sys.stderr.write(f"updraft-cwl-runner: unsupported: {exc}\n")
        return UNSUPPORTED_EXIT
    except (CwlError, UpdraftError) as exc:
        sys.stderr.write(f"updraft-cwl-runner: {exc}\n")
        return PERMANENT_FAILURE
    json.dump(out, sys.stdout, indent=2, sort_keys=True)
    sys.stdout.write("\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
