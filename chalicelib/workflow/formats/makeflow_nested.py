"""Nested Makeflow workflows (`MAKEFLOW file` in make syntax, `"workflow"` + `"args"` in JX),
inlined into the workflow that runs them.

Makeflow runs a nested workflow as a local job, `makeflow file` in the same working folder,
and counts the rule done when the files it declares exist. Inlining gives the same files
and a finer DAG: the nested rules become tasks of their own (their file names, relative to
that same folder, are the parent's). A nested JX workflow is evaluated with the rule's
`args` bound, as `makeflow --jx-args` would; a nested make-syntax file sees the same
environment as its parent. Every output the rule declares must be made by the nested
rules; a nested workflow that names itself again is refused. Text imported without a folder
(a workflow submitted to the cloud API) cannot name nested files: nothing on the server is read.
"""

from __future__ import annotations

import os
from typing import Any

from chalicelib.errors import FormatError, Problem
from chalicelib.workflow.formats.makeflow_rules import Rule

MAX_DEPTH = 8


def _read(path: str, args: dict[str, Any] | None, where: str,
          problems: list[Problem]) -> list[Rule] | None:
    from chalicelib.workflow import formats
    from chalicelib.workflow.formats import jx, makeflow, makeflow_json

    try:
        text = formats.read_text(path)
    except FormatError as exc:
        problems.append(Problem(f"{where}: the nested workflow {path!r} "
                                f"{exc.problems[0].message if exc.problems else 'cannot be read'}"))
        return None
    body = next((ln.strip() for ln in text.splitlines() if ln.strip() and not ln.startswith("#")), "")
    if body.startswith("{"):
        try:
            data = jx.evaluate_workflow(text, args or {})
        except jx.JXError as exc:
            problems.append(Problem(f"{where}: nested workflow {os.path.basename(path)!r} line "
                                    f"{exc.line}: {exc.message}"))
            return None
        if not makeflow_json.sniff(data):
            problems.append(Problem(f"{where}: the nested workflow {os.path.basename(path)!r} "
                                    "is not a Makeflow JSON workflow (no 'rules' list)"))
            return None
        rules, sub_problems, _ = makeflow_json.read_rules(data)
    else:
        rules, sub_problems, _, _ = makeflow.read_rules(text)
    name = os.path.basename(path)
    problems.extend(Problem(f"{where}: nested workflow {name!r} {p.message}") for p in sub_problems)
    return [Rule(**{**{f: getattr(r, f) for f in r.__struct_fields__},
                    "where": f"{name} {r.where}"}) for r in rules]


def inline(rules: list[Rule], base_dir: str | None, problems: list[Problem], notes: list[str],
           stack: tuple[str, ...] = ()) -> list[Rule]:
    """`rules` with every rule that runs a nested workflow replaced by that workflow's rules."""
    if not any(r.workflow for r in rules):
        return rules
    out: list[Rule] = []
    for rule in rules:
        if not rule.workflow:
            out.append(rule)
            continue
        if base_dir is None:  # text sent to a server: no folder to read it from, nor leave
            problems.append(Problem(f"{rule.where}: runs the nested workflow {rule.workflow!r}, "
                                    "which is read from the workflow's folder: import the file "
                                    "from disk (updraft run FILE), not as text"))
            continue
        path = os.path.normpath(os.path.join(base_dir, rule.workflow))
        if path in stack or len(stack) >= MAX_DEPTH:
            problems.append(Problem(f"{rule.where}: nested workflow {rule.workflow!r} runs itself "
                                    f"again (or nests deeper than {MAX_DEPTH})"))
            continue
        nested = _read(path, rule.args, rule.where, problems)
        if nested is None:
            continue
        nested = inline(nested, base_dir, problems, notes, (*stack, path))
        made = {p for r in nested for p in r.outputs}
        missing = [p for p in rule.outputs if p not in made]
        if missing:
            problems.append(Problem(f"{rule.where}: the nested workflow {rule.workflow!r} makes "
                                    f"none of {missing!r}, which the rule declares"))
        if not stack:
            notes.append(f"nested workflow {rule.workflow!r} ({rule.where}) inlined: "
                         f"{len(nested)} rule(s)")
        out.extend(nested)
    return out

