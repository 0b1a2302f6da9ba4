"""Which known ids a mistyped one meant (`updraft logs RUN blastn_000` -> `blastn-000`).

Ids are compared without case and with `_`, `-`, `.` and spaces as one separator first (the
spelling a user most often gets wrong, and what imported formats rename), then by
similarity of those forms."""

from __future__ import annotations

import difflib
import re
from collections.abc import Iterable

_SEPARATORS = re.compile(r"[-_. ]+")


def folded(name: str) -> str:
    """`name` without case and with every run of separators as one `-`."""
    return _SEPARATORS.sub("-", name.casefold())


def similar_ids(wanted: str, ids: Iterable[str], n: int = 3, cutoff: float = 0.6) -> list[str]:
    """Up to `n` of `ids` closest to `wanted`: those equal to it when folded, else the most
    similar (difflib) folded forms, best first."""
    by_form: dict[str, list[str]] = {}
    for i in ids:
        by_form.setdefault(folded(i), []).append(i)
    key = folded(wanted)
    if key in by_form:
        return by_form[key][:n]
    out: list[str] = []
    for form in difflib.get_close_matches(key, list(by_form), n=n, cutoff=cutoff):
        out.extend(by_form[form])
    return out[:n]
