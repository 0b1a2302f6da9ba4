"""Rewrite one marked section of a Markdown file (the benchmark harnesses' --write)."""

from __future__ import annotations

from pathlib import Path


def write_section(path: Path, start: str, end: str, body: str) -> None:
    """Put `body` between the `start` and `end` markers, replacing what was there; append the
    section (to a new "# Benchmarks" file if there is none) when the markers are absent."""
    block = f"{start}\n{body.rstrip()}\n{end}\n"
    old = path.read_text() if path.exists() else "# Benchmarks\n"
    if start in old and end in old:
        head, rest = old.split(start, 1)
        new = head + block + rest.split(end, 1)[1].lstrip("\n")
    else:
        new = old.rstrip() + "\n\n" + block
    path.write_text(new)
