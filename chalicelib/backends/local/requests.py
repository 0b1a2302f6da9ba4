"""POST /runs bodies on the local runtime: {"workflow": <document or text>} or
{"file": "path"}, with "format", "data" (a folder on this machine) and "name"
(chalicelib/service/submission.py has the envelope every runtime shares)."""

from __future__ import annotations

import json
import os
from typing import TYPE_CHECKING, Any

from chalicelib.errors import FormatError, NotFoundError, Problem
from chalicelib.service.runtime import Request
from chalicelib.service.submission import check_envelope

if TYPE_CHECKING:
    from chalicelib.backends.local.runtime import LocalRuntime

REFERENCE_KEY = "file"


def read_request(rt: LocalRuntime, body: Any) -> Request:
    """The request, its workflow loaded and validated; FormatError or NotFoundError otherwise."""
    from chalicelib.workflow import formats

    if not isinstance(body, dict) or not ({"workflow", REFERENCE_KEY} & set(body)):
        raise FormatError([Problem("send {\"workflow\": <document or text>} or {\"file\": \"path\"}, "
                                   "optionally with \"data\": \"folder\", \"format\" and \"name\"")], "<request>")
    check_envelope(body, REFERENCE_KEY)
    if body.get("file") is not None and not isinstance(body["file"], str):
        raise FormatError([Problem("must be a string", None, "file")], "<request>")
    fmt, data, name = body.get("format"), body.get("data"), body.get("name")
    if data is not None and not os.path.isdir(data):
        raise FormatError([Problem(f"{data} is not a folder on this machine", None, "data")], "<request>")
    if body.get("file") is not None:
        path = os.path.abspath(body["file"])
        if not os.path.isfile(path):
            raise NotFoundError(f"no workflow file {path}")
        return rt.request(formats.load(path, fmt), data, path, name=name)
    doc = body["workflow"]
    text = doc if isinstance(doc, str) else json.dumps(doc)
    return rt.request(formats.loads(text, source="<request>", fmt=fmt), data, "api", name=name)
