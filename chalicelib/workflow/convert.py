"""`updraft convert FILE --to native`: any supported format, written in the native format.

The workflow is validated first, so what is written always loads and validates again;
reading it back gives the same tasks and edges (ids, commands, files, `after`, resources,
placement, env, type and hints all survive).
"""

from __future__ import annotations

from chalicelib.errors import FormatError, Problem
from chalicelib.workflow import formats
from chalicelib.workflow.formats import native
from chalicelib.workflow.model import Workflow
from chalicelib.workflow.validate import validate

TARGETS = (native.NAME,)


def convert_workflow(workflow: Workflow, to: str = native.NAME, source: str | None = None) -> str:
    """The text of `workflow` in format `to`, after validating it."""
    if to not in TARGETS:
        raise FormatError([Problem(f"cannot write format {to!r}; can write: {', '.join(TARGETS)}")],
                          source)
    validate(workflow, source)
    return native.dump(workflow)


def convert(path: str, to: str = native.NAME, fmt: str | None = None) -> str:
    """Read `path` (format auto-detected unless `fmt` is given) and return it in format `to`."""
    return convert_workflow(formats.load(path, fmt), to, source=path)
