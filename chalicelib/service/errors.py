"""One mapping from chalicelib/errors.py exceptions to an HTTP status and a JSON body, for
the Chalice app, the local server, the SDK's local transport and the S3 trigger's receipts.

    400  {"error": "invalid workflow", "source", "problems": [...], "message"}   WorkflowError
    400  {"error": "missing inputs", "missing": [...], "message"}                 MissingInputsError
    404  {"error": "not found", "message"}                                        NotFoundError
    409  {"error": "conflict", "message"}      StateConflictError, RunBusyError (by type)
    413  {"error": "too large", "limit", "message"}                              TooLargeError
    400  {"error": <class name>, "message"}                                       any other
"""

from __future__ import annotations

from typing import Any

from chalicelib.errors import (
    MissingInputsError,
    NotFoundError,
    RunBusyError,
    StateConflictError,
    TooLargeError,
    UpdraftError,
    WorkflowError,
)

Reply = tuple[int, dict[str, Any]]
CONFLICTS = (StateConflictError, RunBusyError)


def error_body(exc: UpdraftError) -> Reply:
    if isinstance(exc, WorkflowError):
        return 400, {"error": "invalid workflow", "source": exc.source,
                     "problems": [p.to_dict() for p in exc.problems], "message": str(exc)}
    if isinstance(exc, MissingInputsError):
        return 400, {"error": "missing inputs", "missing": exc.missing, "message": str(exc)}
    if isinstance(exc, NotFoundError):
        return 404, {"error": "not found", "message": str(exc)}
    if isinstance(exc, TooLargeError):
        return 413, {"error": "too large", "limit": exc.limit, "message": str(exc)}
    if isinstance(exc, CONFLICTS):
        return 409, conflict(str(exc))
    return 400, {"error": type(exc).__name__, "message": str(exc)}


def conflict(message: str) -> dict[str, Any]:
    return {"error": "conflict", "message": message}
