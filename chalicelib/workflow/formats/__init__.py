"""Workflow file formats, auto-detected by content.

Each format module offers `NAME`, `sniff(data) -> bool` and a `load_*` entry used here.
Formats that are not JSON (Makeflow's make syntax) sniff the raw text.
"""

from __future__ import annotations

import gzip
import json
import os
import zlib
from collections.abc import Callable
from typing import Any

from chalicelib.errors import FormatError, Problem
from chalicelib.workflow.formats import native
from chalicelib.workflow.model import Workflow

JsonLoader = Callable[[Any, str | None, str], Workflow]
TextLoader = Callable[[str, str | None, str], Workflow]

# (name, sniff, loader) for JSON formats, most specific first. Importer modules add theirs.
JSON_FORMATS: list[tuple[str, Callable[[Any], bool], JsonLoader]] = []
# (name, sniff(text), loader) for non-JSON formats.
TEXT_FORMATS: list[tuple[str, Callable[[str], bool], TextLoader]] = []


def _register_builtin() -> None:
    # importers live in sibling modules; `registry` adds them to the tables above
    from chalicelib.workflow.formats import registry  # noqa: F401
    if not any(name == native.NAME for name, _, _ in JSON_FORMATS):
        JSON_FORMATS.append(
            (native.NAME, native.sniff, lambda data, base, src: native.from_data(data, base, src))
        )


def format_names() -> list[str]:
    _register_builtin()
    return [n for n, _, _ in JSON_FORMATS] + [n for n, _, _ in TEXT_FORMATS]


def read_text(path: str) -> str:
    try:
        with open(path, "rb") as fh:
            raw = fh.read()
    except OSError as exc:
        raise FormatError([Problem(f"cannot be read: {exc.strerror or exc}")], path) from exc
    if raw[:2] == b"\x1f\x8b":
        try:
            raw = gzip.decompress(raw)
        except (OSError, EOFError, zlib.error) as exc:  # BadGzipFile is an OSError
            raise FormatError([Problem(f"starts as gzip but does not decompress ({exc})")], path) from exc
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise FormatError([Problem(f"not UTF-8 text (byte {exc.start})")], path) from exc


def loads(text: str, source: str = "<workflow>", fmt: str | None = None, base_dir: str | None = None) -> Workflow:
    """Parse workflow text in any supported format (auto-detected unless `fmt` is given)."""
    data: Any = None
    json_error: json.JSONDecodeError | None = None
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        json_error = exc
    except ValueError:  # an integer literal longer than Python converts (4,300 digits)
        raise FormatError([Problem(unreadable_number())], source) from None
    except RecursionError:
        raise FormatError([Problem("JSON nested too deeply to be a workflow")], source) from None
    if json_error is None:
        native.check_unicode(data, text, source)
    if json_error is None and fmt in (None, native.NAME) and _plainly_native(data):
        return native.from_data(data, base_dir, source)  # the usual case: no importer is loaded
    names = format_names()
    if fmt is not None and fmt not in names:
        raise FormatError([Problem(f"unknown format {fmt!r}; known: {', '.join(names)}")], source)
    if json_error is None:
        for name, sniff, loader in JSON_FORMATS:
            if (fmt is None and sniff(data)) or fmt == name:
                return loader(data, base_dir, source)
    for name, sniff_text, text_loader in TEXT_FORMATS:
        if (fmt is None and sniff_text(text)) or fmt == name:
            return text_loader(text, base_dir, source)
    if json_error is not None and text.lstrip()[:1] in ("{", "["):
        raise FormatError(
            [Problem(f"invalid JSON at line {json_error.lineno} column {json_error.colno}: {json_error.msg}")],
            source,
        )
    raise FormatError(
        [Problem(f"not a workflow in any known format ({', '.join(names)}); pass --format to choose one")],
        source,
    )


def unreadable_number() -> str:
    return ("a number has more digits than can be read (4,300 at most); give a finite number "
            "of sensible size")


def _plainly_native(data: Any) -> bool:
    """Tagged native, or an object with a `tasks` list and none of the keys by which the
    importers' formats are recognised (HyperFlow may also have `tasks`, with a `data` or a
    `signals` list): then the importers need not be loaded to tell. False: let the full
    detection decide."""
    return native.sniff(data) and (
        data.get("format") == native.FORMAT_TAG
        or not (isinstance(data.get("data"), list) or isinstance(data.get("signals"), list)))


def load(path: str, fmt: str | None = None) -> Workflow:
    """Read a workflow file of any supported format."""
    if os.path.isdir(path):
        raise FormatError([Problem("is a folder, not a workflow file")], path)
    if not os.path.exists(path):
        raise FormatError([Problem("no such file")], path)
    return loads(read_text(path), source=path, fmt=fmt, base_dir=os.path.dirname(os.path.abspath(path)))
