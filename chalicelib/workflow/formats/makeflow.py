"""Makeflow's make syntax (.mf): rules, variables, categories, LOCAL, directives.

What is read, following Makeflow's own parser:
- `targets : sources` then exactly one command line (tab-indented; a space-indented line
  without '=' also counts). Blank and comment lines may come between. `LOCAL` in front of
  the command makes the task Placement.LOCAL; `MAKEFLOW` (nested workflows) is rejected.
- `NAME=value`, `NAME+=value`, `export NAME[=value]`; between a rule and its command,
  `@NAME=value` or `NAME=value` sets a variable for that rule only. `$NAME`, `$(NAME)` and
  `${NAME}` are substituted when read, except inside single quotes.
- `CATEGORY=x` switches the category; CORES, MEMORY (MB), DISK (MB) and WALL_TIME (s)
  set after it belong to that category, with the default category as fallback. They become
  the task's resources; the category becomes its type.
- `.SIZE file bytes` (size hints, "size:<file>"), `.MAKEFLOW CATEGORY|CORES|MEMORY|DISK|
  WALL_TIME value`; `.MAKEFLOW MODE` is accepted and ignored.
Every variable visible to a rule (except the resource ones) is also put in its task's
environment, so a command that reads it from the environment sees the same value.
Errors name the source line.
"""

from __future__ import annotations

import os
import re

from msgspec import Struct, field

from chalicelib.errors import Problem
from chalicelib.workflow.formats.makeflow_rules import DEFAULT_CATEGORY, Rule, build
from chalicelib.workflow.model import Workflow
from chalicelib.workflow.numbers import finite, number_problem

NAME = "makeflow"
RESOURCE_VARS = {"CORES": "cores", "MEMORY": "memory_mb", "DISK": "disk_mb",
                 "WALL_TIME": "wall_time_s"}
_NOT_ENV = {"CATEGORY", "SYMBOL", "GPUS", "MPI_PROCESSES", "BATCH_OPTIONS", "BATCH_LOCAL",
            "MAKEFLOW_INPUTS", "MAKEFLOW_OUTPUTS", *RESOURCE_VARS}
_ASSIGN = re.compile(r"^@?\s*([A-Za-z_][A-Za-z0-9_]*)\s*(\+?=)(.*)$")
_SUBST = re.compile(r"\$(?:\(([A-Za-z_][A-Za-z0-9_]*)\)|\{([A-Za-z_][A-Za-z0-9_]*)\}"
                    r"|([A-Za-z_][A-Za-z0-9_]*))")
_SIZE = re.compile(r"^(\d+(?:\.\d*)?)\s*([KMGTP]?)i?B?$", re.IGNORECASE)
_SNIFF_LINES = 400


def _unquoted_index(text: str, chars: str) -> int:
    """Index of the first character of `chars` outside quotes (and not escaped), or -1."""
    quote = ""
    i = 0
    while i < len(text):
        c = text[i]
        if c == "\\":
            i += 2
            continue
        if quote:
            if c == quote:
                quote = ""
        elif c in "'\"":
            quote = c
        elif c in chars:
            return i
        i += 1
    return -1


def _strip_comment(text: str) -> str:
    cut = _unquoted_index(text, "#")
    return text if cut < 0 else text[:cut]


def _is_rule_head(line: str) -> bool:
    if not line or line[0] in " \t#.@":
        return False
    colon, equal = _unquoted_index(line, ":"), _unquoted_index(line, "=")
    return colon > 0 and (equal < 0 or colon < equal)


def sniff(text: str) -> bool:
    """True when the text has a rule line followed by a tab-indented command."""
    first = next((ln.strip() for ln in text.splitlines()[:_SNIFF_LINES]
                  if ln.strip() and not ln.strip().startswith("#")), "")
    if first[:1] in ("{", "["):
        return False
    lines = [line for _, line in _logical_lines("\n".join(text.splitlines()[:_SNIFF_LINES]))]
    for i, line in enumerate(lines):
        if not _is_rule_head(line):
            continue
        for nxt in lines[i + 1:i + 20]:
            body = nxt.strip()
            if not body or body.startswith("#"):
                continue
            if nxt.startswith("\t"):
                return True
            if body.startswith(("@", ".")) or _ASSIGN.match(body):
                continue
            break
    return False


def _unquote(value: str) -> str:
    value = value.strip()
    if len(value) >= 2 and value[0] == value[-1] and value[0] in "'\"":
        return value[1:-1]
    return value


def parse_size(text: str) -> float | None:
    """Bytes in '123', '10K', '1.5G' (powers of 1024), or None."""
    m = _SIZE.match(text.strip())
    if not m:
        return None
    power = "KMGTP".find(m.group(2).upper()) + 1 if m.group(2) else 0
    return finite(float(m.group(1)) * 1024**power)  # None for 1e400 or 1e308G


class _RuleState(Struct):
    lineno: int
    targets: list[str]
    sources: list[str]
    category: str
    local_vars: dict[str, str] = field(default_factory=dict)


class _Parser:
    def __init__(self, text: str) -> None:
        self.lines = _logical_lines(text)
        self.scopes: dict[str, dict[str, str]] = {DEFAULT_CATEGORY: {}}
        self.category = DEFAULT_CATEGORY
        self.exported: dict[str, None] = {}
        self.sizes: dict[str, float] = {}
        self.rules: list[Rule] = []
        self.problems: list[Problem] = []
        self.undefined: dict[str, int] = {}
        self.ignored: list[str] = []

    def fail(self, lineno: int, message: str) -> None:
        self.problems.append(Problem(f"line {lineno}: {message}"))

    # -- variables ------------------------------------------------------------------------

    def lookup(self, name: str, rule: _RuleState | None) -> str | None:
        if rule is not None and name in rule.local_vars:
            return rule.local_vars[name]
        category = rule.category if rule is not None else self.category
        for scope in (self.scopes.get(category, {}), self.scopes[DEFAULT_CATEGORY]):
            if name in scope:
                return scope[name]
        return None

    def expand(self, text: str, lineno: int, rule: _RuleState | None, strict: bool) -> str:
        """Substitute variables outside single quotes; unknown ones stay for the shell."""
        out: list[str] = []
        quote = ""
        i = 0
        while i < len(text):
            c = text[i]
            if c == "'" and quote != '"':
                quote = "" if quote == "'" else "'"
            elif c == '"' and quote != "'":
                quote = "" if quote == '"' else '"'
            elif c == "$" and quote != "'":
                m = _SUBST.match(text, i)
                if m:
                    name = m.group(1) or m.group(2) or m.group(3)
                    value = self.lookup(name, rule)
                    if value is None:
                        if strict:
                            self.fail(lineno, f"variable {name!r} is not defined (Makeflow would "
                                              "look in its own environment: define it in the file)")
                        self.undefined.setdefault(name, lineno)
                        out.append("${" + name + "}")  # the shell's variable: $(NAME) would run NAME
                    else:
                        out.append(value)
                    i = m.end()
                    continue
            out.append(c)
            i += 1
        return "".join(out)

    def assign(self, lineno: int, body: str, rule: _RuleState | None) -> str | None:
        m = _ASSIGN.match(body)
        if not m:
            self.fail(lineno, f"not a variable assignment: {body[:60]!r}")
            return None
        name, op, raw = m.group(1), m.group(2), m.group(3)
        value = self.expand(_strip_comment(raw).strip(), lineno, rule, strict=False)
        if op == "+=":
            old = self.lookup(name, rule)
            value = f"{old} {value}" if old else value
        if rule is not None:
            rule.local_vars[name] = value
            if name == "CATEGORY":
                rule.category = _unquote(value) or DEFAULT_CATEGORY
        elif name == "CATEGORY":
            self.category = _unquote(value) or DEFAULT_CATEGORY
            self.scopes.setdefault(self.category, {})
            self.scopes[DEFAULT_CATEGORY][name] = value
        else:
            self.scopes.setdefault(self.category, {})[name] = value
        return name

    def export(self, lineno: int, body: str) -> None:
        rest = body[len("export"):].strip()
        if _unquoted_index(rest, "=") >= 0:
            name = self.assign(lineno, rest, None)
            if name:
                self.exported[name] = None
            return
        for name in _strip_comment(rest).split():
            self.exported[name] = None

    def directive(self, lineno: int, body: str, rule: _RuleState | None) -> None:
        words = self.expand(_strip_comment(body), lineno, rule, strict=True).split()
        kind = words[0] if words else ""
        if kind == ".SIZE" and len(words) == 3:
            size = parse_size(words[2])
            if size is None:
                self.fail(lineno, f".SIZE expects a file and a size in bytes, got {words[2]!r}")
            else:
                self.sizes[words[1]] = size
        elif kind == ".MAKEFLOW" and len(words) == 3 and words[1] == "MODE":
            self.ignored.append(f"line {lineno}: .MAKEFLOW MODE {words[2]}")
        elif kind == ".MAKEFLOW" and len(words) == 3 and words[1] in {"CATEGORY", *RESOURCE_VARS}:
            self.assign(lineno, f"{words[1]}={words[2]}", rule)
        elif kind in (".MAKEFLOW", ".SIZE"):
            self.fail(lineno, f"malformed directive {body.strip()[:60]!r}; expected '.SIZE FILE "
                              "BYTES' or '.MAKEFLOW CATEGORY|CORES|MEMORY|DISK|WALL_TIME VALUE'")
        else:
            self.fail(lineno, f"unsupported directive {kind!r}")

    # -- rules ----------------------------------------------------------------------------

    def file_list(self, text: str, lineno: int, rule: _RuleState | None) -> list[str]:
        names = self.expand(text, lineno, rule, strict=True).split()
        for name in names:
            if "->" in name:
                self.fail(lineno, f"remote file renaming {name!r} is not supported")
        return [n for n in names if "->" not in n]

    def rule(self, index: int) -> int:
        """Parse the rule starting at lines[index]; return the index after it."""
        lineno, line = self.lines[index]
        head = _strip_comment(line).strip()
        colon = _unquoted_index(head, ":")
        state = _RuleState(lineno, [], [], self.category)
        state.targets = self.file_list(head[:colon], lineno, None)
        state.sources = self.file_list(head[colon + 1:], lineno, None)
        if not state.targets:
            self.fail(lineno, "the rule has no targets (Makeflow has no phony rules)")
        j = index + 1
        while j < len(self.lines):
            lno, nxt = self.lines[j]
            body = nxt.strip()
            if not body or body.startswith("#"):
                j += 1
            elif _is_command_line(nxt):
                self.command(state, lno, nxt)
                return j + 1
            elif body.startswith("."):
                self.directive(lno, body, state)
                j += 1
            elif _ASSIGN.match(body):
                self.assign(lno, body, state)
                j += 1
            else:
                break
        self.fail(lineno, "the rule has no command (expected a tab-indented command line after it)")
        return j

    def command(self, state: _RuleState, lineno: int, line: str) -> None:
        text = self.expand(_strip_comment(line).strip(), lineno, state, strict=False)
        local = (self.lookup("BATCH_LOCAL", state) or "").strip().lower() in ("1", "true", "yes")
        words = text.split(None, 1)
        while words and words[0] in ("LOCAL", "MAKEFLOW"):
            if words[0] == "MAKEFLOW":
                self.fail(lineno, "nested makeflows (MAKEFLOW) are not supported; "
                                  "import the inner workflow on its own")
            local = True if words[0] == "LOCAL" else local
            words = words[1].split(None, 1) if len(words) > 1 else []
        command = " ".join(words)
        if not command:
            self.fail(lineno, "the command is empty")
        resources: dict[str, float] = {}
        for var, key in RESOURCE_VARS.items():
            raw = self.lookup(var, state)
            if raw is None or not _unquote(raw):
                continue
            try:
                value = float(_unquote(raw))
            except ValueError:
                self.fail(lineno, f"{var} must be a number, got {raw!r}")
                continue
            why = number_problem(value)
            if why is not None:
                self.fail(lineno, f"{var} {why}")
            else:
                resources[key] = value
        self.rules.append(Rule(
            where=f"line {state.lineno}", command=command, inputs=state.sources,
            outputs=state.targets, local=local, category=state.category,
            cores=resources.get("cores"), memory_mb=resources.get("memory_mb"),
            disk_mb=resources.get("disk_mb"), wall_time_s=resources.get("wall_time_s"),
            env=self.env(state),
        ))

    def env(self, state: _RuleState) -> dict[str, str]:
        merged: dict[str, str] = {}
        for scope in (self.scopes[DEFAULT_CATEGORY], self.scopes.get(state.category, {}),
                      state.local_vars):
            merged.update(scope)
        return {k: _unquote(v) for k, v in merged.items() if k not in _NOT_ENV}

    # -- top level ------------------------------------------------------------------------

    def parse(self) -> None:
        i = 0
        while i < len(self.lines):
            lineno, line = self.lines[i]
            body = line.strip()
            if not body or body.startswith("#"):
                i += 1
                continue
            if _is_command_line(line):
                self.fail(lineno, "a command line outside a rule (a rule has exactly one "
                                  "command: join several with ';')")
            elif body.startswith("."):
                self.directive(lineno, body, None)
            elif re.match(r"^export(\s|$)", body):
                self.export(lineno, body)
            elif _is_rule_head(body):
                i = self.rule(i)
                continue
            elif _ASSIGN.match(body):
                self.assign(lineno, body, None)
            else:
                self.fail(lineno, f"not a rule, a variable or a directive: {body[:60]!r}")
            i += 1


def _is_command_line(line: str) -> bool:
    if line.startswith("\t"):
        return True
    if line.startswith(" "):
        body = line.strip()
        return _unquoted_index(body, "=") < 0 and not _is_rule_head(body)
    return False


def _logical_lines(text: str) -> list[tuple[int, str]]:
    """(first line number, text) with backslash-newline continuations joined."""
    out: list[tuple[int, str]] = []
    pending: list[str] = []
    start = 0
    for n, raw in enumerate(text.replace("\r\n", "\n").split("\n"), start=1):
        if not pending:
            start = n
        if raw.endswith("\\") and not raw.endswith("\\\\"):
            pending.append(raw[:-1] + " ")
            continue
        pending.append(raw)
        out.append((start, "".join(pending)))
        pending = []
    if pending:
        out.append((start, "".join(pending)))
    return out


def load_text(text: str, base_dir: str | None = None, source: str | None = None) -> Workflow:
    """Import Makeflow make syntax, or raise WorkflowError naming the source lines."""
    parser = _Parser(text)
    parser.parse()
    notes: list[str] = []
    if parser.undefined:
        listed = ", ".join(f"${n} (line {ln})" for n, ln in sorted(parser.undefined.items()))
        notes.append(f"variables left for the shell, not defined in the file: {listed}")
    notes.extend(f"ignored {what}" for what in parser.ignored)
    exported_unset = [n for n in parser.exported
                      if parser.scopes[DEFAULT_CATEGORY].get(n) is None]
    if exported_unset:
        notes.append("exported without a value (taken from the runner's environment): "
                     + ", ".join(exported_unset))
    name = os.path.basename(source).split(".")[0] if source else "makeflow"
    return build(parser.rules, name=name or "makeflow",
                 summary=f"imported from Makeflow file {name!r}", source=source,
                 base_dir=base_dir, problems=parser.problems, notes=notes, sizes=parser.sizes)

