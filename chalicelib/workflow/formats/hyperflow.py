"""HyperFlow workflow.json: `processes` (or the older `tasks`) + `signals` (or `data`).

As HyperFlow's wflib reads them, the two keys are chosen independently: `processes` if
present else `tasks`, `signals` if present else `data`.
A process becomes a task; its command is `config.executor` (`executable`, `args`, and
`stdout`/`stderr` redirections or `shell: true`). `args` given as one string is the rest of
a shell line (`"executable args"`, as HyperFlow's job executors run it); a list is argv.
Signals that share a name are one signal (HyperFlow looks signals up by name) as long as
they agree on being control signals; two producers of it are still refused. A signal is either a file or a control
token: it is a file when its name looks like one (has a '.' and is not a number) or appears
in the command of a process that reads or writes it; otherwise it only orders tasks
(`after`). Processes that do not fire exactly once (choice/join, control signals, counted
inputs `name:N`, streams of data items) are not a DAG and are rejected, naming the process.
"""

from __future__ import annotations

import json
import os
import re
import shlex
from collections.abc import Mapping, Sequence
from typing import Any

from msgspec import Struct, field

from chalicelib.errors import Problem, WorkflowError
from chalicelib.workflow.formats.names import PathError, PathMapper, describe, numbered_ids
from chalicelib.workflow.model import Placement, Task, Workflow
from chalicelib.workflow.numbers import finite, number_problem

NAME = "hyperflow"
_COUNT = re.compile(r"^(.*):(\w+)$")
_NOT_A_DAG_TYPES = {
    "choice": "it routes its inputs to outputs chosen at run time",
    "join": "it fires when some of its inputs arrive, decided at run time",
    "foreach": "it fires once per input signal, a stream",
    "splitter": "it splits one signal into a stream",
    "csplitter": "it splits one signal into a stream",
}
_NOOP_FUNCTIONS = {"exit"}


def sniff(data: Any) -> bool:
    if not isinstance(data, dict):
        return False
    procs = data["processes"] if "processes" in data else data.get("tasks")
    sigs = data["signals"] if "signals" in data else data.get("data")
    if not (isinstance(procs, list) and isinstance(sigs, list)):
        return False
    if "processes" in data:
        return True
    return all(isinstance(t, dict) and ("ins" in t or "outs" in t) for t in procs[:5])


class _Signal(Struct):
    name: str
    control: str | None
    items: int
    producers: list[int] = field(default_factory=list)
    consumers: list[int] = field(default_factory=list)
    in_command: bool = False


class _Proc(Struct):
    name: str
    raw: dict[str, Any]
    ins: list[int] = field(default_factory=list)
    outs: list[int] = field(default_factory=list)


def _scalar(value: Any) -> str | None:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return value
    if isinstance(value, int | float):
        return json.dumps(value)
    return None


class _Importer:
    def __init__(self, data: dict[str, Any], source: str | None) -> None:
        self.data = data
        self.source = source
        self.problems: list[Problem] = []
        self.paths = PathMapper()
        self.procs_key = "processes" if "processes" in data else "tasks"
        self.signals_key = "signals" if "signals" in data else "data"
        self.alias: dict[int, int] = {}  # index of a repeated signal name -> its first index
        self.repeated: dict[str, int] = {}

    def fail(self, message: str, where: str | None = None, fieldname: str | None = None) -> None:
        self.problems.append(Problem(message, where, fieldname))

    # -- reading -------------------------------------------------------------------------

    def signals(self) -> list[_Signal]:
        raw = self.data.get(self.signals_key) or []
        if not isinstance(raw, list):
            self.fail("must be a list of signals", None, self.signals_key)
            raw = []
        out: list[_Signal] = []
        seen: dict[str, int] = {}
        for i, sig in enumerate(raw):
            name = _scalar(sig.get("name")) if isinstance(sig, dict) else None
            items = sig.get("data") if isinstance(sig, dict) else None
            control = sig.get("control") if isinstance(sig, dict) else None
            signal = _Signal(name or f"#{i}", str(control) if control else None,
                             len(items) if isinstance(items, list) else 0)
            if name is None or name == "":
                self.fail(f"signal #{i} needs a name", None, "signals")
            elif name in seen:
                first = out[seen[name]]
                if first.control != signal.control:
                    self.fail(f"signal name {name!r} is used twice, once as a control signal",
                              None, "signals")
                self.alias[i] = seen[name]
                self.repeated[name] = self.repeated.get(name, 1) + 1
                first.items = max(first.items, signal.items)
            else:
                seen[name] = i
            out.append(signal)
        return out

    def resolve(self, ref: Any, signals: list[_Signal], by_name: Mapping[str, int],
                proc: str, fieldname: str) -> int | None:
        if isinstance(ref, int) and not isinstance(ref, bool):
            if 0 <= ref < len(signals):
                return self.alias.get(ref, ref)
            self.fail(f"signal index {ref} is out of range (0..{len(signals) - 1})", proc, fieldname)
            return None
        name = _scalar(ref)
        if name is not None and name in by_name:
            return by_name[name]
        counted = _COUNT.match(name or "")
        if counted and counted.group(1) in by_name:
            count = counted.group(2)
            how = (f"consume {count} signals per firing" if count.isdigit()
                   else f"as many per firing as signal {count!r} says")
            verb = "reads" if fieldname == "ins" else "emits"
            self.fail(f"{verb} {name!r}: HyperFlow's count syntax ({how}) makes a stream, not a "
                      "DAG", proc, fieldname)
            return None
        self.fail(f"names unknown signal {ref!r}", proc, fieldname)
        return None

    def processes(self, signals: list[_Signal]) -> list[_Proc]:
        raw = self.data.get(self.procs_key) or []
        if not isinstance(raw, list):
            self.fail("must be a list of processes", None, self.procs_key)
            raw = []
        by_name: dict[str, int] = {}
        for i, s in enumerate(signals):
            by_name.setdefault(s.name, i)
        procs: list[_Proc] = []
        for i, item in enumerate(raw):
            if not isinstance(item, dict):
                self.fail(f"process #{i} must be an object", None, "processes")
                continue
            name = _scalar(item.get("name")) or f"process#{i}"
            proc = _Proc(name, item)
            for key, dest in (("ins", proc.ins), ("outs", proc.outs)):
                refs = item.get(key) or []
                if not isinstance(refs, list):
                    self.fail("must be a list of signal names or indexes", name, key)
                    continue
                for ref in refs:
                    idx = self.resolve(ref, signals, by_name, name, key)
                    if idx is not None and idx not in dest:
                        dest.append(idx)
            procs.append(proc)
        for p, proc in enumerate(procs):
            for idx in proc.ins:
                signals[idx].consumers.append(p)
            for idx in proc.outs:
                signals[idx].producers.append(p)
        return procs

    # -- checks: only processes that fire exactly once are DAG tasks --------------------------

    def check_dag(self, procs: list[_Proc], signals: list[_Signal]) -> None:
        for proc in procs:
            ptype = proc.raw.get("type")
            if isinstance(ptype, str) and ptype in _NOT_A_DAG_TYPES:
                self.fail(f"has type {ptype!r}: {_NOT_A_DAG_TYPES[ptype]}; only 'dataflow' "
                          "processes that fire once are DAG tasks", proc.name, "type")
            elif ptype not in (None, "", "dataflow"):
                self.fail(f"has unknown type {ptype!r}; only 'dataflow' is supported",
                          proc.name, "type")
            fires_once = proc.raw.get("firingLimit") == 1
            for idx in proc.ins + proc.outs:
                sig = signals[idx]
                if sig.control:
                    self.fail(f"uses control signal {sig.name!r} ({sig.control!r}): HyperFlow "
                              "control flow decided at run time, not a DAG", proc.name, "ins")
            for idx in proc.ins:
                sig = signals[idx]
                if sig.items > 1 and not fires_once:
                    self.fail(f"fires once per item of signal {sig.name!r} ({sig.items} items) "
                              "and has no firingLimit 1: a stream, not a DAG", proc.name, "ins")
        for sig in signals:
            if len(sig.producers) > 1:
                names = ", ".join(repr(procs[p].name) for p in sig.producers)
                self.fail(f"signal {sig.name!r} is emitted by {names}: HyperFlow merges them at "
                          "run time; a DAG needs one producer per signal", None, "outs")

    # -- commands -----------------------------------------------------------------------------

    def command(self, proc: _Proc) -> tuple[tuple[str, ...], str | None, list[str], str]:
        """(argv, shell, extra output paths, type) of one process."""
        config = proc.raw.get("config")
        executor = config.get("executor") if isinstance(config, dict) else None
        if not isinstance(executor, dict):
            function = proc.raw.get("function")
            if function in _NOOP_FUNCTIONS:
                return ("true",), None, [], proc.name
            self.fail(f"has no config.executor command to run (its function is {function!r}, "
                      "JavaScript run inside HyperFlow): only command-line processes can be "
                      "imported", proc.name, "config")
            return ("true",), None, [], proc.name
        exe = executor.get("executable")
        args_raw = executor.get("args", [])
        if not isinstance(exe, str) or not exe.strip():
            self.fail("config.executor.executable must be a non-empty string", proc.name, "config")
            return ("true",), None, [], proc.name
        if isinstance(args_raw, str):
            line = f"{exe} {args_raw}".strip()  # HyperFlow runs "executable args" as a shell line
            redirected = "".join(f" {op} {shlex.quote(executor[key])}"
                                 for op, key in ((">", "stdout"), ("2>", "stderr"))
                                 if isinstance(executor.get(key), str) and executor.get(key))
            extra_out = [executor[k] for k in ("stdout", "stderr")
                         if isinstance(executor.get(k), str) and executor.get(k)]
            return (), line + redirected, extra_out, exe.rsplit("/", 1)[-1]
        if isinstance(args_raw, int | float):
            args_raw = [args_raw]
        args: list[str] = []
        for a in args_raw if isinstance(args_raw, list) else []:
            text = _scalar(a)
            if isinstance(a, int | float) and not isinstance(a, bool) and finite(a) is None:
                self.fail(f"argument {number_problem(a)}", proc.name, "config.executor.args")
            elif text is None:
                self.fail(f"argument {a!r} is not a string or number", proc.name, "config")
            else:
                args.append(text)
        ptype = exe.rsplit("/", 1)[-1]
        redirects: list[tuple[str, str]] = []
        for op, key in ((">", "stdout"), ("2>", "stderr")):
            target = executor.get(key)
            if isinstance(target, str) and target:
                redirects.append((op, target))
        extra = [f for _, f in redirects]
        if executor.get("shell") is True:
            text = " ".join([exe, *args])
        elif redirects:
            text = shlex.join([exe, *args])
        else:
            return (exe, *args), None, extra, ptype
        text += "".join(f" {op} {shlex.quote(f)}" for op, f in redirects)
        return (), text, extra, ptype

    def is_file(self, sig: _Signal, procs: Sequence[_Proc], commands: Sequence[str]) -> bool:
        name = sig.name
        try:
            float(name)
            return False
        except ValueError:
            pass
        if "." in name or "/" in name:
            return True
        users = sig.producers + sig.consumers
        return any(name in commands[p].split() for p in users)

    # -- assembly -----------------------------------------------------------------------------

    def workflow(self, base_dir: str | None) -> Workflow:
        signals = self.signals()
        procs = self.processes(signals)
        if not procs:
            self.fail("the workflow has no processes", None, "processes")
        self.check_dag(procs, signals)
        cmds = [self.command(p) for p in procs]
        words = [" ".join(argv) + " " + (shell or "") + " " + " ".join(x) for argv, shell, x, _ in cmds]
        files = {i for i, s in enumerate(signals) if self.is_file(s, procs, words)}
        ids = numbered_ids([p.name for p in procs])
        tasks: list[Task] = []
        for p, proc in enumerate(procs):
            argv, shell, extra, ptype = cmds[p]
            after = [ids[q] for idx in proc.ins if idx not in files
                     for q in signals[idx].producers if q != p]
            tasks.append(Task(
                id=ids[p], command=argv, shell=shell,
                inputs=self.file_paths([signals[i].name for i in proc.ins if i in files], proc.name),
                outputs=self.file_paths(
                    [signals[i].name for i in proc.outs if i in files] + extra, proc.name),
                after=tuple(dict.fromkeys(after)), placement=Placement.AUTO, type=ptype,
            ))
        if self.problems:
            raise WorkflowError(self.problems, self.source)
        control = sorted(s.name for i, s in enumerate(signals)
                         if i not in files and (s.producers or s.consumers))
        notes = self.paths.notes()
        if control:
            shown = ", ".join(repr(c) for c in control[:20])
            more = f" and {len(control) - 20} more" if len(control) > 20 else ""
            notes.append(f"signals read as control tokens (ordering only, not files): {shown}{more}")
        if self.repeated:
            shown = ", ".join(f"{n!r} x{k}" for n, k in list(self.repeated.items())[:10])
            notes.append(f"signal names used more than once, read as one signal each: {shown}")
        renamed = [f"{p.name!r} -> {i!r}" for p, i in zip(procs, ids, strict=True) if p.name != i]
        if renamed:
            notes.append(f"{len(renamed)} process name(s) repeat or needed cleaning; "
                         f"numbered, e.g. {renamed[0]}")
        name = _scalar(self.data.get("name")) or _stem(self.source) or "hyperflow"
        return Workflow(
            name=name, tasks=tuple(tasks), base_dir=base_dir,
            description=describe(f"imported from HyperFlow workflow {name!r}", notes),
        )

    def file_paths(self, names: list[str], proc: str) -> tuple[str, ...]:
        out: dict[str, None] = {}
        for name in names:
            try:
                out[self.paths.map(name)] = None
            except PathError as exc:
                self.fail(str(exc), proc, "ins/outs")
        return tuple(out)


def _stem(source: str | None) -> str:
    if not source:
        return ""
    base = os.path.basename(source)
    for suffix in (".gz", ".json", ".workflow"):
        base = base.removesuffix(suffix)
    return base


def load(data: Any, base_dir: str | None = None, source: str | None = None) -> Workflow:
    """Import a parsed HyperFlow workflow.json, or raise WorkflowError naming the processes."""
    if not isinstance(data, dict):
        raise WorkflowError([Problem("a HyperFlow workflow is a JSON object")], source)
    return _Importer(data, source).workflow(base_dir)
