"""Registers the importers with `formats` (imported once by formats._register_builtin).

Order matters because sniffing stops at the first match: the specific JSON formats go in
front of native (whose sniff accepts any object with a `tasks` list, which legacy HyperFlow
files also have), and JX is tried before make syntax (a JX file has `"key": value` lines
that look like rule heads).
"""

from __future__ import annotations

from chalicelib.workflow import formats
from chalicelib.workflow.formats import cwl, hyperflow, makeflow, makeflow_json, wfformat

_JSON = [
    (hyperflow.NAME, hyperflow.sniff, hyperflow.load),
    (wfformat.NAME, wfformat.sniff, wfformat.load),
    (makeflow_json.NAME, makeflow_json.sniff, makeflow_json.load),
    (cwl.NAME, cwl.sniff, cwl.load),
]
_TEXT = [
    (cwl.NAME, cwl.sniff_text, cwl.load_text),
    (makeflow_json.JX_NAME, makeflow_json.sniff_jx, makeflow_json.load_jx_text),
    (makeflow.NAME, makeflow.sniff, makeflow.load_text),
]


def register() -> None:
    """Add the importers once; safe to call again."""
    known = {name for name, _, _ in formats.JSON_FORMATS + formats.TEXT_FORMATS}
    formats.JSON_FORMATS[0:0] = [entry for entry in _JSON if entry[0] not in known]
    formats.TEXT_FORMATS[0:0] = [entry for entry in _TEXT if entry[0] not in known]


register()


def detect(text: str) -> str | None:
    """The name of the format `formats.loads` would read `text` as, or None."""
    import json

    formats.format_names()  # makes sure native is registered too
    try:
        data = json.loads(text)
    except ValueError:  # not JSON, or a number too long to read
        pass
    else:
        for name, sniff, _ in formats.JSON_FORMATS:
            if sniff(data):
                return name
    return next((name for name, sniff_text, _ in formats.TEXT_FORMATS if sniff_text(text)), None)
