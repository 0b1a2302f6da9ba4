"""The native Updraft workflow JSON format (docs/workflow-format.md, workflow.schema.json).

The reader is strict and collects every problem with its task id and field, so a user
fixes a file in one pass. `dump` writes the same format back; reading it again gives the
same tasks and edges.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from chalicelib.errors import FormatError, Problem, WorkflowError
from chalicelib.workflow.model import Dep, InputFile, Placement, PublishRule, Resources, Task, Workflow
from chalicelib.workflow.numbers import hint_bounds, number_problem
from chalicelib.workflow.validate import problems

NAME = "native"
FORMAT_TAG = "updraft/v1"
_TASK_KEYS = {
    "id", "command", "shell", "inputs", "outputs", "after", "resources", "placement",
    "retries", "env", "type", "deps", "hints", "publish",
}
_RESOURCE_KEYS = {"memory_mb", "cpus", "disk_mb", "timeout_s"}
_TOP_KEYS = {"format", "name", "description", "defaults", "inputs", "tasks", "publish"}
_RULE_KEYS = {"to", "outputs"}
_RULE_SHAPE = ('a folder name ("results"), an object {"to": FOLDER, "outputs": [PATTERN, ...]}, '
               "or a list of such objects")
_DEFAULT_KEYS = {"resources", "placement", "retries", "env", "deps"}
_NULL = "must not be null: leave the field out for its default"


def sniff(data: Any) -> bool:
    return isinstance(data, dict) and (data.get("format") == FORMAT_TAG or (
        isinstance(data.get("tasks"), list) and "processes" not in data
        and "workflow" not in data and "rules" not in data
    ))


class _Reader:
    def __init__(self) -> None:
        self.problems: list[Problem] = []

    def fail(self, msg: str, tid: str | None, fieldname: str) -> None:
        self.problems.append(Problem(msg, tid, fieldname))

    def str_list(self, value: Any, tid: str | None, fieldname: str) -> tuple[str, ...]:
        if value is None:
            return ()
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            self.fail("must be a list of strings", tid, fieldname)
            return ()
        return tuple(value)

    def str_map(self, value: Any, tid: str | None, fieldname: str) -> dict[str, str]:
        if value is None:
            return {}
        if not isinstance(value, dict) or not all(
            isinstance(k, str) and isinstance(v, str) for k, v in value.items()
        ):
            self.fail("must be an object of string to string", tid, fieldname)
            return {}
        return dict(value)

    def resources(self, value: Any, base: Resources, tid: str | None, fieldname: str) -> Resources:
        if value is None:
            return base
        if not isinstance(value, dict):
            self.fail("must be an object", tid, fieldname)
            return base
        fields = base.to_dict()
        for key, v in value.items():
            if key not in _RESOURCE_KEYS:
                self.fail(f"unknown resource {key!r}; known: {sorted(_RESOURCE_KEYS)}", tid, fieldname)
            elif (why := number_problem(v)) is not None:
                self.fail(why, tid, f"{fieldname}.{key}")
            else:
                fields[key] = v
        return Resources(
            memory_mb=int(fields["memory_mb"]), cpus=float(fields["cpus"]),
            disk_mb=int(fields["disk_mb"]), timeout_s=float(fields["timeout_s"]),
        )

    def placement(self, value: Any, default: Placement, tid: str | None, fieldname: str) -> Placement:
        if value is None:
            return default
        try:
            return Placement(value)
        except ValueError:
            self.fail(f"must be one of {[p.value for p in Placement]}, got {value!r}", tid, fieldname)
            return default

    def retries(self, value: Any, default: int, tid: str | None, fieldname: str) -> int:
        if value is None:
            return default
        if isinstance(value, bool) or not isinstance(value, int):
            self.fail("must be a whole number", tid, fieldname)
            return default
        return value

    def publish(self, value: Any, tid: str | None) -> tuple[PublishRule, ...]:
        """`publish`: a folder, a rule, or a list of rules (docs/workflow-format.md)."""
        if value is None:
            return ()
        raw = [{"to": value}] if isinstance(value, str) else [value] if isinstance(value, dict) else value
        if not isinstance(raw, list) or not raw:
            self.fail(f"must be {_RULE_SHAPE}", tid, "publish")
            return ()
        rules: list[PublishRule] = []
        for i, item in enumerate(raw):
            where = "publish" if len(raw) == 1 else f"publish[{i}]"
            if not isinstance(item, dict):
                self.fail(f"must be {_RULE_SHAPE}", tid, where)
                continue
            unknown = sorted(set(item) - _RULE_KEYS)
            if unknown:
                self.fail(f"unknown field(s) {unknown}; a rule has 'to' (a folder) and 'outputs' (patterns)",
                          tid, where)
            to = item.get("to")
            if not isinstance(to, str) or not to.strip() or "\x00" in to:
                self.fail("'to' must name a folder (relative to --outdir, else to the workflow file's folder)",
                          tid, f"{where}.to")
                continue
            rules.append(PublishRule(to, self.str_list(item.get("outputs"), tid, f"{where}.outputs")))
        return tuple(rules)

    def task(self, raw: Any, index: int, defaults: dict[str, Any]) -> Task | None:
        if not isinstance(raw, dict):
            self.fail(f"tasks[{index}] must be an object", None, "tasks")
            return None
        tid = raw.get("id")
        if not isinstance(tid, str) or not tid:
            self.fail(f"tasks[{index}] needs a non-empty string 'id'", None, "id")
            return None
        for key, value in raw.items():
            if key not in _TASK_KEYS:
                self.fail(f"unknown field; known fields: {sorted(_TASK_KEYS)}", tid, key)
            elif value is None:
                self.fail(_NULL, tid, key)
        command = raw.get("command")
        shell = raw.get("shell")
        argv: tuple[str, ...] = ()
        if isinstance(command, str):
            self.fail("'command' is an argv list; use 'shell' for a shell string", tid, "command")
        elif command is not None:
            argv = self.str_list(command, tid, "command")
        if shell is not None and not isinstance(shell, str):
            self.fail("must be a string", tid, "shell")
            shell = None
        hints_raw = raw.get("hints") or {}
        hints: dict[str, float] = {}
        if not isinstance(hints_raw, dict):
            self.fail("must be an object of numbers", tid, "hints")
        else:
            for k, v in hints_raw.items():
                low, high, unit = hint_bounds(str(k))
                why = number_problem(v, low, high, unit)
                if why is None:
                    hints[str(k)] = float(v)
                else:
                    self.fail(why, tid, f"hints.{k}")
        env = dict(defaults["env"])
        env.update(self.str_map(raw.get("env"), tid, "env"))
        type_ = raw.get("type", "")
        if not isinstance(type_, str):
            self.fail("must be a string", tid, "type")
            type_ = ""
        given = {"placement"} if raw.get("placement") is not None or defaults["given_placement"] else set()
        raw_res = raw.get("resources")
        given.update(k for k in _RESOURCE_KEYS if (isinstance(raw_res, dict) and k in raw_res)
                     or k in defaults["given_resources"])
        return Task(
            id=tid,
            command=argv,
            shell=shell,
            inputs=self.str_list(raw.get("inputs"), tid, "inputs"),
            outputs=self.str_list(raw.get("outputs"), tid, "outputs"),
            after=self.str_list(raw.get("after"), tid, "after"),
            resources=self.resources(raw.get("resources"), defaults["resources"], tid, "resources"),
            placement=self.placement(raw.get("placement"), defaults["placement"], tid, "placement"),
            retries=self.retries(raw.get("retries"), defaults["retries"], tid, "retries"),
            env=env,
            type=type_,
            deps=tuple(defaults["deps"]) + tuple(map(Dep.parse, self.str_list(raw.get("deps"), tid, "deps"))),
            hints=hints,
            given=frozenset(given),
            publish=self.publish(raw.get("publish"), tid),
        )

    def inputs(self, raw: Any) -> tuple[InputFile, ...]:
        if raw is None:
            return ()
        if not isinstance(raw, list):
            self.fail("must be a list of paths or {path, source} objects", None, "inputs")
            return ()
        out: list[InputFile] = []
        for i, item in enumerate(raw):
            if isinstance(item, str):
                out.append(InputFile(item))
            elif isinstance(item, dict) and isinstance(item.get("path"), str) and isinstance(
                item.get("source", ""), str | type(None)
            ):
                out.append(InputFile(item["path"], item.get("source")))
            else:
                self.fail(f"inputs[{i}] must be a path or an object with 'path' and 'source'", None, "inputs")
        return tuple(out)

    def workflow(self, data: Any, base_dir: str | None) -> Workflow:
        if not isinstance(data, dict):
            self.fail("the top level must be a JSON object", None, "workflow")
            raise WorkflowError(self.problems)
        for key, value in data.items():
            if key not in _TOP_KEYS:
                self.fail(f"unknown top-level field; known: {sorted(_TOP_KEYS)}", None, key)
            elif value is None:
                self.fail(_NULL, None, key)
        tag = data.get("format")
        if tag is not None and tag != FORMAT_TAG:
            self.fail(f"this is the native format's field: {FORMAT_TAG!r} or left out, not {tag!r} "
                      "(other formats are recognised by their own fields; --format names one)", None, "format")
        raw_defaults = data.get("defaults") or {}
        if not isinstance(raw_defaults, dict):
            self.fail("must be an object", None, "defaults")
            raw_defaults = {}
        for key, value in raw_defaults.items():
            if key not in _DEFAULT_KEYS:
                self.fail(f"unknown default; known: {sorted(_DEFAULT_KEYS)}", None, f"defaults.{key}")
            elif value is None:
                self.fail(_NULL, None, f"defaults.{key}")
        defaults = {
            "resources": self.resources(raw_defaults.get("resources"), Resources(), None, "defaults.resources"),
            "placement": self.placement(raw_defaults.get("placement"), Placement.FUNCTION, None, "defaults.placement"),
            "retries": self.retries(raw_defaults.get("retries"), 0, None, "defaults.retries"),
            "env": self.str_map(raw_defaults.get("env"), None, "defaults.env"),
            "deps": tuple(map(Dep.parse, self.str_list(raw_defaults.get("deps"), None, "defaults.deps"))),
            "given_placement": raw_defaults.get("placement") is not None,
            "given_resources": set(raw_defaults["resources"]) & set(_RESOURCE_KEYS)
            if isinstance(raw_defaults.get("resources"), dict) else set(),
        }
        raw_tasks = data.get("tasks")
        if not isinstance(raw_tasks, list):
            self.fail("must be a list of task objects", None, "tasks")
            raw_tasks = []
        tasks = [t for i, raw in enumerate(raw_tasks) if (t := self.task(raw, i, defaults)) is not None]
        name = data.get("name") if data.get("name") is not None else "workflow"  # null: named above
        if not isinstance(name, str):
            self.fail("must be a string", None, "name")
            name = "workflow"
        description = data.get("description", "")
        return Workflow(
            name=name, tasks=tuple(tasks), inputs=self.inputs(data.get("inputs")),
            description=description if isinstance(description, str) else "", base_dir=base_dir,
            publish=self.publish(data.get("publish"), None),
        )


def from_data(data: Any, base_dir: str | None = None, source: str | None = None) -> Workflow:
    """Build a Workflow from parsed JSON, raising WorkflowError with every shape problem, and
    with them every problem validation finds in what could be read (duplicate ids, unknown
    dependencies, cycles...), so that one pass shows all; a field already named for its
    shape is not named again."""
    reader = _Reader()
    workflow = reader.workflow(data, base_dir)
    if reader.problems:
        named = {(p.task_id, p.field) for p in reader.problems}
        more = [p for p in problems(workflow) if (p.task_id, p.field) not in named and p.field != "tasks"]
        raise WorkflowError([*reader.problems, *more], source)
    return workflow


def check_unicode(data: Any, text: str, source: str | None) -> None:
    """Refuse text whose JSON escapes decode to half a UTF-16 pair (e.g. "\\udcff"): such a
    string passes json.loads but cannot be written out again, as UTF-8 or anything else."""
    if "\\ud" not in text and "\\uD" not in text:  # no escape of a surrogate at all: the usual case
        return
    try:
        json.dumps(data, ensure_ascii=False).encode("utf-8")
    except UnicodeEncodeError as exc:
        bad = exc.object[exc.start:exc.end]
        raise FormatError([Problem(f"a string holds {ascii(bad)[1:-1]}, half of a UTF-16 surrogate pair: "
                                   "not valid Unicode")], source) from None


def parse(text: str, base_dir: str | None = None, source: str | None = None) -> Workflow:
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        where = f"line {exc.lineno} column {exc.colno}"
        raise FormatError([Problem(f"invalid JSON at {where}: {exc.msg}")], source) from exc
    except ValueError:  # an integer literal longer than Python converts (4,300 digits)
        raise FormatError([Problem("a number has more digits than can be read (4,300 at most)")],
                          source) from None
    check_unicode(data, text, source)
    return from_data(data, base_dir, source)


def _task_dict(task: Task) -> dict[str, Any]:
    out: dict[str, Any] = {"id": task.id}
    if task.shell is not None:
        out["shell"] = task.shell
    else:
        out["command"] = list(task.command)
    for key in ("inputs", "outputs", "after"):
        value = getattr(task, key)
        if value:
            out[key] = [p + "/" if key in ("inputs", "outputs") and p in task.folders else p for p in value]
    if task.deps:
        out["deps"] = [dep.spelling for dep in task.deps]
    # what the file gave, and every value that is not the default (an importer's): read back,
    # the task has the same values and the same `given` for what matters (limits.py)
    declared = task.declared()
    resources = {k: v for k, v in task.resources.to_dict().items() if k in declared}
    if resources:
        out["resources"] = resources
    if "placement" in declared:
        out["placement"] = task.placement.value
    if task.retries:
        out["retries"] = task.retries
    if task.env:
        out["env"] = dict(task.env)
    if task.type:
        out["type"] = task.type
    if task.hints:
        out["hints"] = dict(task.hints)
    if task.publish:
        out["publish"] = _rules_data(task.publish)
    return out


def _rules_data(rules: tuple[PublishRule, ...]) -> list[dict[str, Any]]:
    return [{"to": r.to, **({"outputs": list(r.outputs)} if r.outputs else {})} for r in rules]


def to_data(workflow: Workflow) -> dict[str, Any]:
    data: dict[str, Any] = {"format": FORMAT_TAG, "name": workflow.name}
    if workflow.description:
        data["description"] = workflow.description
    if workflow.inputs:
        data["inputs"] = [
            f.path if f.source is None else {"path": f.path, "source": f.source} for f in workflow.inputs
        ]
    data["tasks"] = [_task_dict(t) for t in workflow.tasks]
    if workflow.publish:
        data["publish"] = _rules_data(workflow.publish)
    return data


def dump(workflow: Workflow, indent: int | None = 1) -> str:
    return json.dumps(to_data(workflow), indent=indent, ensure_ascii=False) + "\n"


def env_of(mapping: Mapping[str, str] | None) -> dict[str, str]:
    return dict(mapping or {})
