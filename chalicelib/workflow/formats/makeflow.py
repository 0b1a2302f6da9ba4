"""Makeflow's make syntax (.mf): rules, variables, categories, LOCAL, directives.

Read as cctools' parser (makeflow/src/parser_make.c, lexer.c) reads it; the lexical rules
(quotes, `\\` escapes, substitution) are in makeflow_lex.py.
- A line starting with a tab or a space is a command; a line with an unquoted `:` before
  any unquoted `=` is a rule head `targets : sources` (either side may be empty); else
  `NAME=value`, `NAME+=value`, `export NAME[=value] ...`, or a `.DIRECTIVE`. A rule has
  exactly one command; between the head and the command, `NAME=value` (or `@NAME=value`)
  sets a variable for that rule only. `LOCAL` in front of the command makes the task
  Placement.LOCAL; `MAKEFLOW file` runs a nested workflow (inlined, see makeflow_nested).
- `name -> remote` in a rule head gives a file another name inside the task's sandbox.
- A variable the file does not define is looked up in the environment of the user who
  imports it (the CLI's, as `makeflow` reads its own; an import on a server sees none);
  one that is still unknown is left for the shell in commands and is an error in file lists.
- Tasks get Makeflow's environment: the `export`ed variables and CATEGORY, CORES, MEMORY,
  DISK, GPUS, MPI_PROCESSES, WALL_TIME when set (CORES and OMP_NUM_THREADS default to 1);
  other variables stay in the file.
- `CATEGORY=x` switches the category; CORES, MEMORY (MB), DISK (MB) and WALL_TIME (s) set
  after it belong to that category, with the default category as fallback. They become the
  task's resources; the category becomes its type.
- `.SIZE file bytes` (size hints, "size:<file>"), `.MAKEFLOW CATEGORY|CORES|MEMORY|DISK|
  WALL_TIME|MPI_PROCESSES value`; `.MAKEFLOW MODE` is accepted and ignored.
Errors name the source line.
"""

from __future__ import annotations

import os
import re

from msgspec import Struct, field

from chalicelib.errors import Problem
from chalicelib.workflow.formats.context import current
from chalicelib.workflow.formats.makeflow_lex import (
    ARROW,
    COLON,
    SPACE,
    Lexer,
    LexError,
    Token,
    unquoted_index,
)
from chalicelib.workflow.formats.makeflow_rules import DEFAULT_CATEGORY, Rule, build
from chalicelib.workflow.model import Workflow
from chalicelib.workflow.numbers import finite, number_problem

NAME = "makeflow"
RESOURCE_VARS = {"CORES": "cores", "MEMORY": "memory_mb", "DISK": "disk_mb",
                 "WALL_TIME": "wall_time_s"}
EXPORTED_ALWAYS = ("CATEGORY", "CORES", "MEMORY", "DISK", "GPUS", "MPI_PROCESSES", "WALL_TIME")
_DIRECTIVE_VARS = {"CATEGORY", "MPI_PROCESSES", *RESOURCE_VARS}
_ASSIGN = re.compile(r"^@?[ \t]*([A-Za-z_][A-Za-z0-9_]*)[ \t]*(\+?=)")
_HEAD_SPECIAL = re.compile(r"[\\\"'$#]|->")
_SIZE = re.compile(r"^(\d+(?:\.\d*)?)\s*([KMGTP]?)i?B?$", re.IGNORECASE)
_SNIFF_LINES = 400


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


def _is_rule_head(line: str) -> bool:
    """cctools' test: an unquoted ':' that comes before any unquoted '='."""
    if not line or line[0] in " \t#.@":
        return False
    colon = unquoted_index(line, ":")
    if colon < 0:
        return False
    equal = unquoted_index(line[:colon], "=")
    return equal < 0


def _is_command_line(line: str) -> bool:
    return line[:1] in ("\t", " ")


def sniff(text: str) -> bool:
    """True when the text has a rule head followed by an indented command, as Makeflow's
    parser reads them, and has no more lines of prose than rule heads. A tab-indented command
    then decides; with only space-indented ones (as a
    README's code block after "Note:" would be) the first lines must also read as Makeflow
    throughout. JSON-looking text is left to the JSON formats."""
    head = text.split("\n", _SNIFF_LINES)[:_SNIFF_LINES]
    first = next((ln.strip() for ln in head if ln.strip() and not ln.strip().startswith("#")), "")
    if first[:1] in ("{", "["):
        return False
    lines = [line for _, line in _logical_lines("\n".join(head))]
    heads = sum(1 for ln in lines if _is_rule_head(ln))
    prose = sum(1 for ln in lines if ln.strip() and not ln.strip().startswith("#")
                and not _is_command_line(ln) and not _is_rule_head(ln)
                and not ln.lstrip("@").startswith((".", "export"))
                and unquoted_index(ln, "=") < 0)
    if prose > heads:
        return False  # mostly prose (a README with an example in it), not a Makeflow file
    spaced = False
    for i, line in enumerate(lines):
        if not _is_rule_head(line):
            continue
        for nxt in lines[i + 1:i + 20]:
            body = nxt.strip()
            if not body or body.startswith("#"):
                continue
            if nxt.startswith("\t"):
                return True
            if nxt.startswith(" "):
                spaced = True
            elif body.startswith(("@", ".")) or _ASSIGN.match(body):
                continue
            break
    if not spaced:
        return False
    parser = _Parser("\n".join(head[:-1] if len(head) == _SNIFF_LINES else head))
    parser.parse()
    return parser.strange == 0


class _RuleState(Struct):
    lineno: int
    targets: list[str]
    sources: list[str]
    category: str
    renames: dict[str, str] = field(default_factory=dict)
    local_vars: dict[str, str] = field(default_factory=dict)


class _Parser:
    def __init__(self, text: str) -> None:
        self.lines = _logical_lines(text)
        self.scopes: dict[str, dict[str, str]] = {DEFAULT_CATEGORY: {}}
        self.category = DEFAULT_CATEGORY
        self.exported: dict[str, None] = dict.fromkeys(EXPORTED_ALWAYS)
        self.user_exported: dict[str, None] = {}
        self.sizes: dict[str, float] = {}
        self.rules: list[Rule] = []
        self.problems: list[Problem] = []
        self.undefined: dict[str, int] = {}
        self.from_environ: dict[str, None] = {}
        self.ignored: list[str] = []
        self.environ = current().environ
        self.rule_state: _RuleState | None = None
        self.lineno = 0
        self.strict = False
        self.lexer = Lexer(self.lookup_here, self.missing)
        self.strange = 0  # lines that are neither rule, command, variable nor directive

    def fail(self, lineno: int, message: str) -> None:
        self.problems.append(Problem(f"line {lineno}: {message}"))

    # -- variables ------------------------------------------------------------------------

    def lookup(self, name: str, rule: _RuleState | None) -> str | None:
        if rule is not None and name in rule.local_vars:
            return rule.local_vars[name]
        category = rule.category if rule is not None else self.category
        scope = self.scopes.get(category)
        if scope is not None and name in scope:
            return scope[name]
        default = self.scopes[DEFAULT_CATEGORY]
        if name in default:
            return default[name]
        value = self.environ.get(name)
        if value is not None:
            default[name] = value  # as makeflow: read once, then a variable of the file
            self.from_environ[name] = None
        return value

    def lookup_here(self, name: str) -> str | None:
        return self.lookup(name, self.rule_state)

    def missing(self, name: str) -> str:
        if self.strict:
            self.fail(self.lineno, f"variable {name!r} is not defined (define it in the file, or "
                                   "in the environment of `updraft`, as for `makeflow`)")
            return ""
        self.undefined.setdefault(name, self.lineno)
        return "${" + name + "}"  # the shell's variable: $(NAME) would run NAME

    def assign(self, lineno: int, body: str, rule: _RuleState | None) -> str | None:
        m = _ASSIGN.match(body)
        if not m:
            self.fail(lineno, f"not a variable assignment: {body[:60]!r} (expected NAME=value)")
            return None
        name, op = m.group(1), m.group(2)
        self.lineno, self.rule_state, self.strict = lineno, rule, False
        try:
            value = self.lexer.value(body[m.end():])
        except LexError as exc:
            self.fail(lineno, str(exc))
            return None
        if op == "+=":
            old = self.lookup(name, rule)
            value = f"{old} {value}" if old else value
        if rule is not None:
            rule.local_vars[name] = value
            if name in ("CATEGORY", "SYMBOL"):
                rule.category = _unquote(value) or DEFAULT_CATEGORY
        elif name in ("CATEGORY", "SYMBOL"):
            self.category = _unquote(value) or DEFAULT_CATEGORY
            self.scopes.setdefault(self.category, {})
            self.scopes[DEFAULT_CATEGORY]["CATEGORY"] = value
        else:
            self.scopes.setdefault(self.category, {})[name] = value
        return name

    def export(self, lineno: int, body: str) -> None:
        rest = body.lstrip("@ \t")[len("export"):].strip()
        if unquoted_index(rest, "=") >= 0:
            name = self.assign(lineno, rest, None)
            names = [name] if name else []
        else:
            names = _strip_comment(rest).split()
            if not names:
                self.fail(lineno, "export needs the names of the variables to export")
        for name in names:
            self.exported[name] = None
            self.user_exported[name] = None

    def directive(self, lineno: int, body: str, rule: _RuleState | None) -> None:
        self.lineno, self.rule_state, self.strict = lineno, rule, True
        try:
            words = [w for w in self.lexer.command(_strip_comment(body)) if w != SPACE]
        except LexError as exc:
            self.fail(lineno, str(exc))
            return
        kind = words[0] if words else ""
        if kind == ".SIZE" and len(words) == 3:
            size = parse_size(words[2])
            if size is None:
                self.fail(lineno, f".SIZE expects a file and a size in bytes, got {words[2]!r}")
            else:
                self.sizes[words[1]] = size
        elif kind == ".MAKEFLOW" and len(words) == 3 and words[1] == "MODE":
            self.ignored.append(f"line {lineno}: .MAKEFLOW MODE {words[2]}")
        elif kind == ".MAKEFLOW" and len(words) == 3 and words[1] in _DIRECTIVE_VARS:
            if words[1] != "CATEGORY" and parse_size(words[2]) is None:
                self.fail(lineno, f".MAKEFLOW {words[1]} expects a number, got {words[2]!r}")
            else:
                self.assign(lineno, f"{words[1]}={words[2]}", rule)
        elif kind in (".MAKEFLOW", ".SIZE"):
            self.fail(lineno, f"malformed directive {body.strip()[:60]!r}; expected '.SIZE FILE "
                              "BYTES' or '.MAKEFLOW CATEGORY|CORES|MEMORY|DISK|WALL_TIME|"
                              "MPI_PROCESSES|MODE VALUE'")
        else:
            self.fail(lineno, f"unsupported directive {kind!r}")

    # -- rules ----------------------------------------------------------------------------

    def head(self, lineno: int, line: str, state: _RuleState) -> None:
        self.lineno, self.rule_state, self.strict = lineno, None, True
        if not _HEAD_SPECIAL.search(line) and line.count(":") == 1:  # plain names: split
            left, _, right = line.partition(":")
            state.targets, state.sources = left.split(), right.split()
            return
        try:
            tokens = self.lexer.file_list(line)
        except LexError as exc:
            self.fail(lineno, str(exc))
            return
        side = state.targets
        i = 0
        while i < len(tokens):
            tok = tokens[i]
            if tok.kind == COLON:
                if side is state.sources:
                    self.fail(lineno, "a rule head has one ':' (quote or escape a ':' in a name)")
                side = state.sources
            elif tok.kind == ARROW:
                self.fail(lineno, "'->' must come between a file name and its remote name")
            else:
                nxt = tokens[i + 1] if i + 1 < len(tokens) else None
                if nxt is not None and nxt.kind == ARROW:
                    remote = tokens[i + 2] if i + 2 < len(tokens) else Token(SPACE)
                    if remote.kind != "lit":
                        self.fail(lineno, f"{tok.text!r} -> needs a remote name after '->'")
                    else:
                        state.renames[tok.text] = remote.text
                    i += 2
                side.append(tok.text)
            i += 1

    def rule(self, index: int) -> int:
        """Parse the rule starting at lines[index]; return the index after it."""
        lineno, line = self.lines[index]
        state = _RuleState(lineno, [], [], self.category)
        self.head(lineno, line, state)
        j = index + 1
        while j < len(self.lines):
            lno, nxt = self.lines[j]
            body = nxt.strip()
            if not body or body.startswith("#"):
                j += 1
            elif _is_command_line(nxt):
                if self.command(state, lno, nxt):
                    return j + 1
                j += 1  # a blank command line (tab then nothing, or a comment) is no command
            elif body.lstrip("@ \t").startswith("."):
                self.directive(lno, body.lstrip("@ \t"), state)
                j += 1
            elif _ASSIGN.match(body):
                self.assign(lno, body, state)
                j += 1
            else:
                break
        if j < len(self.lines):
            self.strange += 1  # (at the very end, the text may only have been cut short)
        self.fail(lineno, "the rule has no command (expected an indented command line after it)")
        return j

    def command(self, state: _RuleState, lineno: int, line: str) -> bool:
        """Read the command line; False when it is blank (no command yet)."""
        self.lineno, self.rule_state, self.strict = lineno, state, False
        try:
            words = self.lexer.command(line)
        except LexError as exc:
            self.fail(lineno, str(exc))
            return True
        while words and words[-1] == SPACE:
            words.pop()
        if not words:
            return False
        local = (self.lookup("BATCH_LOCAL", state) or "").strip().lower() in ("1", "true", "yes")
        nested = False
        while words and words[0] in ("LOCAL", "MAKEFLOW", "WORKFLOW", SPACE):
            local = local or words[0] == "LOCAL"
            nested = nested or words[0] in ("MAKEFLOW", "WORKFLOW")
            words.pop(0)
        command = "".join(words)
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
        workflow: str | None = None
        if nested:
            parts = command.split()
            if len(parts) != 1:
                self.fail(lineno, "MAKEFLOW takes one workflow file name")
            workflow = _unquote(parts[0]) if parts else None
        self.rules.append(Rule(
            where=f"line {state.lineno}", command=command, inputs=state.sources,
            outputs=state.targets, local=local, category=state.category,
            cores=resources.get("cores"), memory_mb=resources.get("memory_mb"),
            disk_mb=resources.get("disk_mb"), wall_time_s=resources.get("wall_time_s"),
            env=self.env(state), renames=state.renames, workflow=workflow,
        ))
        return True

    def env(self, state: _RuleState) -> dict[str, str]:
        """Makeflow's task environment (dag_node_env_create): exported names with a value."""
        out: dict[str, str] = {}
        for name in self.exported:
            value = self.lookup(name, state)
            if value is not None:
                out[name] = _unquote(value)
        cores, threads = out.get("CORES"), self.lookup("OMP_NUM_THREADS", state)
        if cores and not threads:
            out["OMP_NUM_THREADS"] = cores
        elif threads:
            out["CORES"] = _unquote(threads)
        else:
            out["OMP_NUM_THREADS"] = out["CORES"] = "1"
        return out

    # -- top level ------------------------------------------------------------------------

    def parse(self) -> None:
        i = 0
        while i < len(self.lines):
            lineno, line = self.lines[i]
            body = line.strip()
            if not body or body.startswith("#"):
                i += 1
                continue
            bare = body.lstrip("@ \t")
            if _is_command_line(line) and not _ASSIGN.match(body):
                self.strange += 1
                self.fail(lineno, "a command line outside a rule (a rule has exactly one "
                                  "command: join several with ';')")
            elif re.match(r"^export(\s|$)", bare):
                self.export(lineno, body)
            elif _is_rule_head(line):
                i = self.rule(i)
                continue
            elif unquoted_index(body, "=") >= 0:
                self.assign(lineno, body, None)
            elif bare.startswith("."):
                self.directive(lineno, bare, None)
            else:
                self.strange += 1
                self.fail(lineno, f"not a rule, a variable or a directive: {body[:60]!r}")
            i += 1


def _strip_comment(text: str) -> str:
    cut = unquoted_index(text, "#")
    return text if cut < 0 else text[:cut]


def _logical_lines(text: str) -> list[tuple[int, str]]:
    """(first line number, text) with backslash-newline continuations joined by a space."""
    out: list[tuple[int, str]] = []
    pending: list[str] = []
    start = 0
    if "\r" in text:
        text = text.replace("\r\n", "\n")
    for n, raw in enumerate(text.split("\n"), start=1):
        if not pending:
            start = n
        stripped = raw.rstrip("\\")
        if (len(raw) - len(stripped)) % 2 == 1:  # an odd run of backslashes escapes the newline
            pending.append(raw[:-1] + " ")
            continue
        pending.append(raw)
        out.append((start, "".join(pending) if len(pending) > 1 else raw))
        pending = []
    if pending:
        out.append((start, "".join(pending)))
    return out


def read_rules(text: str) -> tuple[list[Rule], list[Problem], list[str], dict[str, float]]:
    """(rules, problems, notes, sizes) of make-syntax text, before they become tasks."""
    parser = _Parser(text)
    parser.parse()
    notes: list[str] = []
    if parser.undefined:
        listed = ", ".join(f"${n} (line {ln})" for n, ln in sorted(parser.undefined.items()))
        notes.append(f"variables left for the shell, not defined in the file: {listed}")
    if parser.from_environ:
        notes.append("taken from the environment of the import: " + ", ".join(parser.from_environ))
    notes.extend(f"ignored {what}" for what in parser.ignored)
    unset = [n for n in parser.user_exported if parser.lookup(n, None) is None]
    if unset:
        notes.append("exported without a value, in the file or in the environment of the import: "
                     + ", ".join(unset))
    return parser.rules, parser.problems, notes, parser.sizes


def load_text(text: str, base_dir: str | None = None, source: str | None = None) -> Workflow:
    """Import Makeflow make syntax, or raise WorkflowError naming the source lines."""
    rules, problems, notes, sizes = read_rules(text)
    name = os.path.basename(source).split(".")[0] if source else "makeflow"
    return build(rules, name=name or "makeflow",
                 summary=f"imported from Makeflow file {name!r}", source=source,
                 base_dir=base_dir, problems=problems, notes=notes, sizes=sizes)
