"""What an import may read besides the file: the caller's environment and JX values.

Makeflow reads variables a file does not define from the environment of the `makeflow`
process, and `makeflow --jx-args FILE --jx-define NAME=VALUE` binds JX symbols. Updraft's
CLI does the same for the user who runs it (`with importing(ImportContext(...))`); an import
anywhere else (the cloud coordinator reading a submitted file) sees an empty environment,
so a server's variables never end up in a workflow.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Any

from msgspec import Struct, field


class ImportContext(Struct, frozen=True):
    environ: Mapping[str, str] = field(default_factory=dict)
    jx_defines: Mapping[str, Any] = field(default_factory=dict)


_EMPTY = ImportContext()
_CURRENT: ContextVar[ImportContext | None] = ContextVar("updraft_import_context", default=None)


def current() -> ImportContext:
    return _CURRENT.get() or _EMPTY


@contextmanager
def importing(ctx: ImportContext) -> Iterator[ImportContext]:
    """Imports inside the `with` block read `ctx`."""
    token = _CURRENT.set(ctx)
    try:
        yield ctx
    finally:
        _CURRENT.reset(token)


def from_options(environ: Mapping[str, str], args_files: list[str] | None,
                 defines: list[str] | None) -> ImportContext:
    """The context `makeflow --jx-args FILE --jx-define NAME=EXPR` would give: each args file
    (a JX object) merged in order, then each define (a JX expression, which may use the
    values before it). Raises ConfigError naming the bad option."""
    from chalicelib.errors import ConfigError
    from chalicelib.workflow.formats import jx

    values: dict[str, Any] = {}
    for path in args_files or []:
        try:
            with open(path, encoding="utf-8") as fh:
                text = fh.read()
        except OSError as exc:
            raise ConfigError(f"--jx-args {path}: cannot be read: {exc.strerror or exc}") from None
        try:
            data = jx.evaluate(jx.parse(text), dict(values))
        except jx.JXError as exc:
            raise ConfigError(f"--jx-args {path}: line {exc.line}: {exc.message}") from None
        if not isinstance(data, dict):
            raise ConfigError(f"--jx-args {path}: must hold a JX object of NAME: value")
        values.update(data)
    for item in defines or []:
        name, eq, expr = item.partition("=")
        if not eq or not name.strip().isidentifier():
            raise ConfigError(f"--jx-define {item!r}: expected NAME=EXPRESSION, e.g. N=10 or "
                              "NAME='\"text\"'")
        try:
            values[name.strip()] = jx.evaluate(jx.parse(expr), dict(values))
        except jx.JXError as exc:
            raise ConfigError(f"--jx-define {item!r}: {exc.message} (a JX expression: quote "
                              "text as \"text\")") from None
    return ImportContext(environ=dict(environ), jx_defines=values)
