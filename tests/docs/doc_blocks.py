"""The fenced blocks of the project's Markdown docs, and what the doc tests do with each.

A block's language says what it is:

- `bash`, `sh`, `shell`: commands a reader runs. The doc tests run them, in order, from the
  repository's root with the project's virtual environment active.
- `python`: a program a reader runs; run the same way.
- `json`: an example document; it must parse. Written to a file first when marked `file:`.
- anything else (`text`, `yaml`, no language, ...): an illustration, a synopsis or output.

Markers are HTML comments on the lines just above a block's opening fence, one per line:

    <!-- doc-test: skip: needs an AWS account -->    not run; the reason is required
    <!-- doc-test: file: hello.json -->              written to that path (from the root)
    <!-- doc-test: expect: SUCCEEDED -->             the output (stdout + stderr) holds this
    <!-- doc-test: expect-file: m/report.html -->    this file exists and is not empty after
    <!-- doc-test: exit: 2 -->                       the exit status expected (default 0)
    <!-- doc-test: replace: --degrees 1.0 => --degrees 0.2 -->   run with this text changed
    <!-- doc-test: slow -->                          a long block (pytest's `slow` marker)
    <!-- doc-test: timeout: 900 -->                  seconds the block may take (default 600)
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

SHELL = ("bash", "sh", "shell")
RUNNABLE = (*SHELL, "python")
MARKER = re.compile(r"^\s*<!--\s*doc-test:\s*(?P<body>.*?)\s*-->\s*$")
FENCE = re.compile(r"^(?P<indent>\s*)(?P<fence>`{3,}|~{3,})(?P<info>[^`]*)$")
DIRECTIVES = ("skip", "file", "expect", "expect-file", "exit", "replace", "slow", "timeout")
# First words of a line that is a command someone would type: an untagged block holding one
# must say what it is (bash: it runs; text: a synopsis or output).
COMMANDS = ("updraft", "scripts/", "python", "python3", "pip", "pip3", "aws", "chalice", "layers/",
            "docker", "curl", "apt-get", "sudo", "git", ".ci/")


class DocBlockError(ValueError):
    """A doc's markers or fences are malformed (names the file and line)."""


@dataclass(frozen=True)
class Block:
    doc: Path
    line: int  # the opening fence's line, 1-based
    lang: str
    text: str
    skip: str | None = None
    file: str | None = None
    expect: tuple[str, ...] = ()
    expect_files: tuple[str, ...] = ()
    exit_code: int = 0
    replace: tuple[tuple[str, str], ...] = ()
    slow: bool = False
    timeout: float = 600.0

    @property
    def where(self) -> str:
        return f"{self.doc.name}:{self.line}"

    @property
    def runnable(self) -> bool:
        return self.lang in RUNNABLE and self.file is None

    @property
    def checked(self) -> bool:
        """Whether the doc tests do anything with this block."""
        return self.runnable or self.file is not None or self.lang == "json"

    def script(self) -> str:
        """The text to run: the block with its `replace:` changes made."""
        text = self.text
        for old, new in self.replace:
            text = text.replace(old, new)
        return text

    def looks_like_commands(self) -> bool:
        """An untagged block with a line that starts like a command."""
        for raw in self.text.splitlines():
            line = raw.strip()
            if line and not line.startswith("#") and line.startswith(COMMANDS):
                return True
        return False


def _apply(where: str, body: str, opts: dict[str, object]) -> None:
    name, _, value = body.partition(":")
    name, value = name.strip(), value.strip()
    if name not in DIRECTIVES:
        raise DocBlockError(f"{where}: unknown doc-test directive '{name}' (known: {', '.join(DIRECTIVES)})")
    if name in ("skip", "file", "expect", "expect-file", "replace", "exit", "timeout") and not value:
        raise DocBlockError(f"{where}: 'doc-test: {name}:' needs a value (e.g. a reason for skip)")
    if name == "skip":
        opts["skip"] = value
    elif name == "file":
        opts["file"] = value
    elif name == "expect":
        opts["expect"] = (*opts.get("expect", ()), value)  # type: ignore[misc]
    elif name == "expect-file":
        opts["expect_files"] = (*opts.get("expect_files", ()), value)  # type: ignore[misc]
    elif name == "replace":
        old, sep, new = value.partition(" => ")
        if not sep or not old:
            raise DocBlockError(f"{where}: 'doc-test: replace:' takes 'OLD => NEW', got '{value}'")
        opts["replace"] = (*opts.get("replace", ()), (old, new))  # type: ignore[misc]
    elif name == "exit":
        if not value.isdigit():
            raise DocBlockError(f"{where}: 'doc-test: exit:' takes a number, got '{value}'")
        opts["exit_code"] = int(value)
    elif name == "timeout":
        try:
            opts["timeout"] = float(value)
        except ValueError:
            raise DocBlockError(f"{where}: 'doc-test: timeout:' takes seconds, got '{value}'") from None
    elif name == "slow":
        opts["slow"] = True


def parse(doc: Path, text: str | None = None) -> list[Block]:
    """Every fenced block of `doc` with the markers above it."""
    lines = (doc.read_text() if text is None else text).splitlines()
    blocks: list[Block] = []
    pending: dict[str, object] = {}
    pending_line = 0
    i = 0
    while i < len(lines):
        line = lines[i]
        marker = MARKER.match(line)
        if marker:
            if not pending:
                pending_line = i + 1
            _apply(f"{doc.name}:{i + 1}", marker.group("body"), pending)
            i += 1
            continue
        fence = FENCE.match(line)
        if fence is None:
            if pending:
                raise DocBlockError(f"{doc.name}:{pending_line}: a doc-test marker must stand on the lines "
                                    "just above a fenced block")
            i += 1
            continue
        start = i
        close = fence.group("fence")
        body: list[str] = []
        i += 1
        while i < len(lines) and not (lines[i].strip().startswith(close[0] * len(close))
                                      and lines[i].strip().strip(close[0]) == ""):
            body.append(lines[i][len(fence.group("indent")):] if lines[i].startswith(fence.group("indent"))
                        else lines[i])
            i += 1
        if i >= len(lines):
            raise DocBlockError(f"{doc.name}:{start + 1}: the fenced block opened here is never closed")
        i += 1
        lang = fence.group("info").strip().split(" ")[0].lower()
        blocks.append(Block(doc=doc, line=start + 1, lang=lang, text="\n".join(body) + "\n",
                            **pending))  # type: ignore[arg-type]
        pending = {}
    if pending:
        raise DocBlockError(f"{doc.name}:{pending_line}: a doc-test marker with no block after it")
    return blocks


def docs(repo: Path) -> list[Path]:
    """The Markdown a user reads: README.md and docs/*.md."""
    found = [repo / "README.md"] if (repo / "README.md").is_file() else []
    return found + sorted((repo / "docs").glob("*.md"))
