"""What a run was submitted with, kept with the run so that `resume` can honour it.

`updraft run FILE --no-cache --concurrency 4 ...` stores, in the run record's options under
"submitted", the options that change how the run executes or what its spec is (ORIGIN_FIELDS,
EXECUTION_FIELDS), the workflow file's absolute path and the SHA-256 of its bytes (and of a CWL
job file). `updraft resume RUN` then:

- reuses those options; a flag given to resume overrides the stored one, and says so;
- compares the file with its digest: an edited file is run again as a new run (the default,
  as Nextflow's `-resume` re-reads the script; Snakemake re-runs jobs whose code changed),
  its unchanged tasks reused through memoization (cache/memo.py); `--stored` replays the
  stored spec instead and says how to run the edited file.

Runs submitted another way (the HTTP API, the SDK) have no "submitted" entry: they resume
as stored, as before. This module is pure but for reading the file it hashes.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Mapping
from typing import Any

from msgspec import Struct, field

from chalicelib.errors import ConfigError

KEY = "submitted"  # where in RunRecord.options the entry lives

# how the file was read into a workflow (a change to any of them is a change to the spec)
ORIGIN_FIELDS = ("format", "job", "jx_args", "jx_define", "data", "replay", "time_scale", "size_scale",
                 "objective", "deadline", "budget")
# how the run executes (a resume may override these)
EXECUTION_FIELDS = ("no_cache", "emulate_lambda", "concurrency", "rerun")


class Submitted(Struct, frozen=True):
    """A run's "submitted" entry: its workflow file (absolute), digests and options."""

    file: str | None = None
    sha256: str | None = None
    job_sha256: str | None = None
    options: dict[str, Any] = field(default_factory=dict)
    resumed_from: str | None = None

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"file": self.file, "sha256": self.sha256, "options": dict(self.options)}
        if self.job_sha256 is not None:
            out["job_sha256"] = self.job_sha256
        if self.resumed_from is not None:
            out["resumed_from"] = self.resumed_from
        return out

    @classmethod
    def of(cls, run_options: Mapping[str, Any]) -> Submitted | None:
        """The entry stored with a run; None for a run submitted without one (API, SDK, older)."""
        raw = run_options.get(KEY)
        if not isinstance(raw, Mapping):
            return None
        opts = raw.get("options")
        return cls(file=raw.get("file"), sha256=raw.get("sha256"), job_sha256=raw.get("job_sha256"),
                   options=dict(opts) if isinstance(opts, Mapping) else {}, resumed_from=raw.get("resumed_from"))


def file_sha256(path: str) -> str | None:
    """The SHA-256 of a file's bytes; None when it cannot be read (gone, a folder)."""
    digest = hashlib.sha256()
    try:
        with open(path, "rb") as fh:
            for block in iter(lambda: fh.read(1 << 20), b""):
                digest.update(block)
    except OSError:
        return None
    return digest.hexdigest()


def _unset(value: Any) -> bool:
    """An option left at its default: None, False or an empty list (0 is a value: --deadline 0)."""
    return value is None or value is False or (isinstance(value, list | tuple) and not value)


def _plain(value: Any) -> Any:
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    return value


def capture(values: Mapping[str, Any], file: str | None, resumed_from: str | None = None) -> Submitted:
    """The entry for a run about to be submitted from `file` with these option `values`
    (argparse's, by name; absent and None options are left out, so defaults stay defaults)."""
    options = {k: _plain(values[k]) for k in (*ORIGIN_FIELDS, *EXECUTION_FIELDS) if not _unset(values.get(k))}
    for key in ("job", "data"):  # paths, as the resume will be made from another folder
        if isinstance(options.get(key), str):
            options[key] = os.path.abspath(options[key])
    if options.get("jx_args"):
        options["jx_args"] = [os.path.abspath(p) for p in options["jx_args"]]
    path = os.path.abspath(file) if file and file != "-" else None
    job = options.get("job")
    return Submitted(file=path, sha256=file_sha256(path) if path else None,
                     job_sha256=file_sha256(job) if isinstance(job, str) else None,
                     options=options, resumed_from=resumed_from)


class Override(Struct, frozen=True):
    name: str
    stored: Any
    given: Any

    def describe(self) -> str:
        if self.name in SWITCHES:
            on, off = SWITCHES[self.name]
            return f"{on if self.given else off} given: overrides the run's {on if self.stored else off}"
        return f"--{self.name.replace('_', '-')} {_shown(self.given)} given: overrides the run's {_shown(self.stored)}"


# a switch's flags: (when set, when not)
SWITCHES = {"no_cache": ("--no-cache", "--cache"), "emulate_lambda": ("--emulate-lambda", "--no-emulate-lambda")}


def _shown(value: Any) -> str:
    if value is None:
        return "default"
    if isinstance(value, list | tuple):
        return " ".join(map(str, value)) or "none"
    return str(value)


def execution_options(stored: Submitted | None, given: Mapping[str, Any]) -> tuple[dict[str, Any], list[Override]]:
    """The options a resume runs with: the stored ones, each overridden by a flag given to
    resume (`given[name]` not None). Returns them and the overrides that changed something."""
    base = dict(stored.options) if stored is not None else {}
    out: dict[str, Any] = {k: base.get(k) for k in EXECUTION_FIELDS}
    overrides: list[Override] = []
    for name in EXECUTION_FIELDS:
        value = given.get(name)
        if value is None:
            continue
        value = _plain(value)
        if stored is not None and _normal(value) != _normal(out[name]):
            overrides.append(Override(name, out[name], value))
        out[name] = value
    return out, overrides


def _normal(value: Any) -> Any:
    return None if _unset(value) else _plain(value)


class Change(Struct, frozen=True):
    """How the workflow file a run came from compares with its digest at submission."""

    file: str
    state: str  # "unchanged" | "edited" | "gone"
    what: str = "workflow file"  # or "job file"

    @property
    def edited(self) -> bool:
        return self.state == "edited"


def compare(stored: Submitted) -> Change | None:
    """The file's change since submission; None when the run has no file to compare."""
    if stored.file is None or stored.sha256 is None:
        return None
    now = file_sha256(stored.file)
    if now is None:
        return Change(stored.file, "gone")
    if now != stored.sha256:
        return Change(stored.file, "edited")
    job = stored.options.get("job")
    if isinstance(job, str) and stored.job_sha256 is not None:
        job_now = file_sha256(job)
        if job_now is None:
            return Change(job, "gone", "job file")
        if job_now != stored.job_sha256:
            return Change(job, "edited", "job file")
    return Change(stored.file, "unchanged")


RELOAD, REPLAY = "reload", "replay"


def choose(run_id: str, stored: Submitted | None, change: Change | None, reload: bool | None) -> str:
    """RELOAD (a new run from the edited file) or REPLAY (the run's stored spec, in place).

    `reload`: True (--reload), False (--stored) or None (the default: reload when edited).
    ConfigError when --reload cannot be honoured (no file recorded, or it is gone)."""
    if reload is False:
        return REPLAY
    if change is None:
        if reload:
            raise ConfigError(f"run {run_id} was not submitted from a workflow file by `updraft run` (or "
                              "before files were recorded), so --reload has nothing to re-read; "
                              "resume it without --reload, or start the file with `updraft run FILE`")
        return REPLAY
    if change.state == "gone":
        if reload:
            raise ConfigError(f"the {change.what} {change.file} of run {run_id} is gone, so --reload has "
                              "nothing to re-read; resume without --reload to replay the stored spec")
        return REPLAY
    return RELOAD if change.edited else REPLAY


def describe(run_id: str, change: Change | None, mode: str, new_run: str | None = None) -> str | None:
    """The line resume prints about the workflow file (None when there is nothing to say)."""
    if change is None or change.state == "unchanged":
        return None
    if change.state == "gone":
        return (f"the {change.what} {change.file} of run {run_id} is gone: resuming the run as it was "
                "submitted (its stored spec)")
    if mode == RELOAD:
        return (f"the {change.what} {change.file} changed since run {run_id} was submitted: running the edited "
                f"file as new run {new_run}; tasks whose command, inputs and tools are unchanged are reused "
                f"from the cache (`updraft resume {run_id} --stored` replays the run as submitted)")
    return (f"the {change.what} {change.file} changed since run {run_id} was submitted; replaying the run "
            f"as submitted (--stored). To run the edited file: `updraft resume {run_id}` (or `updraft run "
            f"{change.file if change.what == 'workflow file' else 'FILE'}`)")
