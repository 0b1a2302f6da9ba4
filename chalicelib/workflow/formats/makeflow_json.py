"""Makeflow JSON workflows (JX already expanded): rules, categories, environment.

Each rule has `command`, `inputs`, `outputs` (a file is a string or an object naming it),
`local_job`, `category`, `resources` {cores, memory, disk, wall-time} and `environment`.
A rule's resources and environment override its category's, which override the default
category's and the workflow's `environment`; as in Makeflow, CORES and OMP_NUM_THREADS are
also set (to each other, or 1). `define` holds the values the JX was expanded
from and is not needed once expanded. A file object's `task_name` (or `source`) renames it
inside the task; a rule with `workflow` (and JX `args`) runs a nested workflow, inlined.
Two spellings seen in real files and ignored by Makeflow itself are read as meant, and
said so: `output` for `outputs` and `local job` for `local_job`.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any

from chalicelib.errors import Problem, WorkflowError
from chalicelib.workflow.formats.makeflow_rules import DEFAULT_CATEGORY, Rule, build
from chalicelib.workflow.model import Workflow
from chalicelib.workflow.numbers import finite, number_problem

NAME = "makeflow-json"
_ALIASES = {"output": "outputs", "input": "inputs", "local job": "local_job"}
_KNOWN = {"command", "inputs", "outputs", "local_job", "category", "resources", "environment",
          "allocation", "variables"}
_RESOURCE_KEYS = {"cores": "cores", "memory": "memory_mb", "disk": "disk_mb",
                  "wall-time": "wall_time_s", "wall_time": "wall_time_s"}


def sniff(data: Any) -> bool:
    return isinstance(data, dict) and isinstance(data.get("rules"), list)


class _Reader:
    def __init__(self, data: dict[str, Any]) -> None:
        self.data = data
        self.problems: list[Problem] = []
        self.aliased: dict[str, list[str]] = {}
        self.ignored: dict[str, list[str]] = {}

    def fail(self, where: str, message: str) -> None:
        self.problems.append(Problem(f"{where}: {message}"))

    def env(self, value: Any, where: str) -> dict[str, str]:
        if value is None:
            return {}
        if not isinstance(value, dict):
            self.fail(where, "environment must be an object of strings")
            return {}
        out: dict[str, str] = {}
        for k, v in value.items():
            if isinstance(v, int | float) and not isinstance(v, bool) and finite(v) is None:
                self.fail(where, f"environment {k!r} {number_problem(v)}")
            elif isinstance(v, str | int | float) and not isinstance(v, bool):
                out[str(k)] = str(v)
            else:
                self.fail(where, f"environment {k!r} must be a string")
        return out

    def resources(self, value: Any, where: str) -> dict[str, float]:
        if value is None:
            return {}
        if not isinstance(value, dict):
            self.fail(where, "resources must be an object")
            return {}
        out: dict[str, float] = {}
        for key, v in value.items():
            if key not in _RESOURCE_KEYS:
                continue  # gpus, mpi-processes: nothing to map them to
            why = number_problem(v, low=0.0)
            if why is None:
                if v > 0:
                    out[_RESOURCE_KEYS[key]] = float(v)
            else:
                self.fail(where, f"resources.{key} {why}")
        return out

    def files(self, value: Any, where: str, key: str,
              renames: dict[str, str] | None = None) -> list[str]:
        if value is None:
            return []
        if not isinstance(value, list):
            self.fail(where, f"{key} must be a list")
            return []
        out: list[str] = []
        for item in value:
            if isinstance(item, str):
                out.append(item)
            elif isinstance(item, dict):
                name = item.get("dag_name", item.get("name"))
                remote = item.get("task_name", item.get("source"))
                if not isinstance(name, str):
                    self.fail(where, f"a file in {key} has no 'dag_name' or 'name'")
                elif remote not in (None, name) and not isinstance(remote, str):
                    self.fail(where, f"file {name!r}: 'task_name' must be a string")
                else:
                    if isinstance(remote, str) and remote != name and renames is not None:
                        renames[name] = remote
                    out.append(name)
            else:
                self.fail(where, f"{key} entries must be strings or objects, got {item!r}")
        return out

    def categories(self) -> dict[str, tuple[dict[str, float], dict[str, str]]]:
        raw = self.data.get("categories") or {}
        if not isinstance(raw, dict):
            self.fail("categories", "must be an object")
            return {}
        out = {}
        for name, cat in raw.items():
            where = f"categories[{name!r}]"
            cat = cat if isinstance(cat, dict) else {}
            out[str(name)] = (self.resources(cat.get("resources"), where),
                              self.env(cat.get("environment"), where))
        return out

    def rule(self, raw: Any, index: int, default: str,
             cats: Mapping[str, tuple[dict[str, float], dict[str, str]]],
             top_env: dict[str, str]) -> Rule | None:
        where = f"rules[{index}]"
        if not isinstance(raw, dict):
            self.fail(where, "a rule must be an object")
            return None
        raw = dict(raw)
        for alias, key in _ALIASES.items():
            if alias in raw and key not in raw:
                raw[key] = raw.pop(alias)
                self.aliased.setdefault(f"{alias!r} as {key!r}", []).append(where)
        for key in raw:
            if key not in _KNOWN and key not in ("workflow", "args"):
                self.ignored.setdefault(str(key), []).append(where)
        command = raw.get("command")
        workflow = raw.get("workflow")
        if command is not None and workflow is not None:
            self.fail(where, "a rule has a 'command' or a 'workflow', not both")
            return None
        if workflow is not None:
            args = raw.get("args")
            if not isinstance(workflow, str) or not workflow:
                self.fail(where, "'workflow' must be the name of a workflow file")
                return None
            if args is not None and not isinstance(args, dict):
                self.fail(where, "'args' must be an object of JX values")
                return None
            command = f"makeflow {workflow}"
        elif not isinstance(command, str):
            self.fail(where, "a rule needs a 'command' string (or a nested 'workflow')")
            return None
        where = f"{where} ({command[:60]!r})"
        category = raw.get("category") if isinstance(raw.get("category"), str) else default
        res: dict[str, float] = {}
        env = dict(top_env)
        for cat in dict.fromkeys([default, category]):
            cat_res, cat_env = cats.get(cat, ({}, {}))
            res.update(cat_res)
            env.update(cat_env)
        res.update(self.resources(raw.get("resources"), where))
        env.update(self.env(raw.get("environment"), where))
        threads = env.get("OMP_NUM_THREADS")  # as Makeflow's dag_node_env_create
        if "CORES" in env and not threads:
            env["OMP_NUM_THREADS"] = env["CORES"]
        elif threads:
            env["CORES"] = threads
        else:
            env["CORES"] = env["OMP_NUM_THREADS"] = "1"
        renames: dict[str, str] = {}
        return Rule(
            where=where, command=command,
            inputs=self.files(raw.get("inputs"), where, "inputs", renames),
            outputs=self.files(raw.get("outputs"), where, "outputs", renames),
            renames=renames, workflow=workflow,
            args=dict(raw["args"]) if isinstance(raw.get("args"), dict) else None,
            local=raw.get("local_job") is True, category=category,
            cores=res.get("cores"), memory_mb=res.get("memory_mb"), disk_mb=res.get("disk_mb"),
            wall_time_s=res.get("wall_time_s"), env=env,
        )

    def notes(self) -> list[str]:
        out = []
        for what, wheres in self.aliased.items():
            out.append(f"read {what} (Makeflow ignores the misspelling) in {_few(wheres)}")
        for key, wheres in self.ignored.items():
            out.append(f"ignored unknown key {key!r} in {_few(wheres)}")
        return out


def _few(items: list[str], limit: int = 5) -> str:
    shown = ", ".join(w.split(" (")[0] for w in items[:limit])
    return shown + (f" and {len(items) - limit} more" if len(items) > limit else "")


def read_rules(data: dict[str, Any]) -> tuple[list[Rule], list[Problem], list[str]]:
    """(rules, problems, notes) of expanded Makeflow JSON, before they become tasks."""
    reader = _Reader(data)
    default = data.get("default_category")
    default = default if isinstance(default, str) else DEFAULT_CATEGORY
    cats = reader.categories()
    top_env = reader.env(data.get("environment"), "environment")
    rules = [r for i, raw in enumerate(data["rules"])
             if (r := reader.rule(raw, i, default, cats, top_env)) is not None]
    return rules, reader.problems, reader.notes()


def load(data: Any, base_dir: str | None = None, source: str | None = None,
         kind: str = "Makeflow JSON") -> Workflow:
    """Import expanded Makeflow JSON, or raise WorkflowError naming the rules (rules[N])."""
    if not sniff(data):
        raise WorkflowError([Problem("a Makeflow JSON workflow is an object with a 'rules' list")],
                            source)
    rules, problems, notes = read_rules(data)
    name = os.path.basename(source).split(".")[0] if source else "makeflow"
    return build(rules, name=name or "makeflow", summary=f"imported from {kind} {name!r}",
                 source=source, base_dir=base_dir, problems=problems, notes=notes)


JX_NAME = "makeflow-jx"


def sniff_jx(text: str) -> bool:
    """JX text: an object (after comments) with a `rules` key, that is not plain JSON."""
    for line in text.splitlines():
        body = line.strip()
        if body and not body.startswith("#"):
            return body.startswith("{") and '"rules"' in text
    return False


def load_jx_text(text: str, base_dir: str | None = None, source: str | None = None) -> Workflow:
    """Evaluate a JX workflow (see jx.py for what is supported), then import it as JSON."""
    from chalicelib.workflow.formats import jx
    from chalicelib.workflow.formats.context import current

    try:
        data = jx.evaluate_workflow(text, current().jx_defines)
    except jx.JXError as exc:
        hint = (" (give it a value with --jx-define NAME=VALUE or --jx-args FILE, as for "
                "makeflow --jx)" if exc.message.startswith("undefined symbol") else "")
        raise WorkflowError([Problem(f"line {exc.line}: {exc.message}{hint}")], source) from exc
    except RecursionError as exc:
        raise WorkflowError([Problem("JX expressions are nested too deeply")], source) from exc
    return load(data, base_dir, source, kind="Makeflow JX")
