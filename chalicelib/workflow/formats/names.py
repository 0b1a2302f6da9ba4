"""Task ids and data paths made from names written for other engines.

HyperFlow process names repeat, Makeflow targets can be absolute paths, WfCommons ids are
free text. Every mapping here is deterministic (the same file always gives the same
workflow, so converting twice gives identical output) and injective (two source names never
collapse onto one id or one path, so no dependency is lost or invented).
"""

from __future__ import annotations

import hashlib
import re
from collections import Counter
from collections.abc import Sequence
from pathlib import PurePosixPath

from chalicelib.workflow.validate import MAX_ID_LENGTH

_BAD_ID_CHARS = re.compile(r"[\s/\\\x00-\x1f\x7f]+")
_DRIVE = re.compile(r"^([A-Za-z]):[\\/]")
ABS_PREFIX = "_abs"
UP_PART = "_up"


def clean_id(name: str) -> str:
    """A valid task id for `name`: bad characters become '_', long names keep a digest."""
    text = _BAD_ID_CHARS.sub("_", name.strip()) or "task"
    if len(text) > MAX_ID_LENGTH:
        digest = hashlib.sha256(name.encode("utf-8")).hexdigest()[:10]
        text = text[: MAX_ID_LENGTH - 11] + "~" + digest
    return text


class IdAllocator:
    """Hands out unique ids; a clash gets '-2', '-3', ... in order of asking."""

    def __init__(self) -> None:
        self.taken: set[str] = set()

    def take(self, name: str) -> str:
        base = clean_id(name)
        candidate, n = base, 2
        while candidate in self.taken:
            suffix = f"-{n}"
            candidate = base[: MAX_ID_LENGTH - len(suffix)] + suffix
            n += 1
        self.taken.add(candidate)
        return candidate


def numbered_ids(names: Sequence[str]) -> list[str]:
    """Ids for names that may repeat, in the same order.

    A name used once keeps it (cleaned); a repeated name is numbered in order of
    appearance, zero-padded so ids sort: mProjectPP-01 ... mProjectPP-32.
    """
    cleaned = [clean_id(n) for n in names]
    counts = Counter(cleaned)
    alloc = IdAllocator()
    out: list[str] = [""] * len(names)
    for i, base in enumerate(cleaned):
        if counts[base] == 1:
            out[i] = alloc.take(base)
    seen: Counter[str] = Counter()
    for i, base in enumerate(cleaned):
        if counts[base] > 1:
            seen[base] += 1
            width = len(str(counts[base]))
            out[i] = alloc.take(f"{base}-{seen[base]:0{width}d}")
    return out


class PathError(ValueError):
    """A source path that cannot name a file in the data root."""


class PathMapper:
    """Maps source paths to safe relative data paths and remembers what it changed.

    './a' and 'a//b/' are the same file as 'a' and 'a/b' (not reported). Absolute paths go
    under '_abs/', '..' parts become '_up', backslashes become '/': those changes are
    listed by `notes()` so an importer can say so.
    """

    def __init__(self) -> None:
        self._cache: dict[str, str] = {}
        self._owner: dict[str, str] = {}
        self.changed: dict[str, str] = {}
        self._bulk: list[Sequence[str]] = []  # long lists of plain paths, kept as they are
        self._bulk_set: set[str] | None = None

    def _in_bulk(self, safe: str) -> bool:
        if not self._bulk:
            return False
        if self._bulk_set is None:
            self._bulk_set = {p for names in self._bulk for p in names}
        return safe in self._bulk_set

    def map(self, raw: str) -> str:
        hit = self._cache.get(raw)
        if hit is not None:
            return hit
        safe, canonical, odd = _map_path(raw)
        owner = self._owner.setdefault(safe, canonical)
        if owner != canonical or (canonical != safe and self._in_bulk(safe)):
            owner = owner if owner != canonical else safe
            raise PathError(f"paths {owner!r} and {canonical!r} would both map to {safe!r}")
        if odd:
            self.changed[raw] = safe
        self._cache[raw] = safe
        return safe

    def map_many(self, raws: Sequence[str]) -> Sequence[str]:
        """`map` of each, in order; a long list of plain relative paths (a rule with a
        million sources) is checked in one pass instead of one path at a time."""
        if len(raws) < 64:
            return [self.map(r) for r in raws]
        try:
            joined = "\n".join(raws)
        except TypeError:
            return [self.map(r) for r in raws]
        if joined.count("\n") != len(raws) - 1 or not _plain_lines(joined):
            return [self.map(r) for r in raws]
        del joined
        odd = {safe: canonical for safe, canonical in self._owner.items() if safe != canonical}
        if odd:
            for clash in odd.keys() & set(raws):
                raise PathError(f"paths {odd[clash]!r} and {clash!r} would both map to {clash!r}")
        self._bulk.append(raws)
        self._bulk_set = None
        return raws

    def notes(self, limit: int = 20) -> list[str]:
        items = [f"{src!r} -> {dst!r}" for src, dst in sorted(self.changed.items())]
        if not items:
            return []
        head = "paths outside the data root were mapped: " + ", ".join(items[:limit])
        if len(items) > limit:
            head += f" and {len(items) - limit} more"
        return [head]


_PLAIN_PATH = re.compile(r"(?!\.\.?(?:/|$))[^/\\\x00\s]+(?:/(?!\.\.?(?:/|$))[^/\\\x00\s]+)*")


_NOT_PLAIN = ("\\", "\x00", " ", "\t", "\r", "\f", "\v", "//", "\n\n", "\n/", "/\n", ":/",
              "/./", "/../", "\n./", "\n../", "/.\n", "/..\n", "\n.\n", "\n..\n")


def _plain_lines(joined: str) -> bool:
    """Whether every line of "\n".join(paths) is a _PLAIN_PATH with no drive letter, by
    substring tests (each a fast scan); False sends the paths one by one through `map`."""
    if not joined.isascii() or any(bad in joined for bad in _NOT_PLAIN):
        return False
    cut = joined.find("\n")
    first = joined if cut < 0 else joined[:cut]
    last = joined[joined.rfind("\n") + 1:]
    return not any(bad in f"\n{end}\n" for end in (first, last) for bad in _NOT_PLAIN)


def _map_path(raw: str) -> tuple[str, str, bool]:
    """(safe path, canonical source spelling, whether the change must be reported)."""
    if isinstance(raw, str) and _PLAIN_PATH.fullmatch(raw) and not _DRIVE.match(raw):
        return raw, raw, False  # already a clean relative path (the common case, and fast)
    if not isinstance(raw, str) or not raw.strip():
        raise PathError("empty file name")
    if "\x00" in raw:
        raise PathError(f"file name {raw!r} contains a NUL byte")
    text = raw.strip()
    odd = "\\" in text
    text = text.replace("\\", "/")
    prefix: list[str] = []
    drive = _DRIVE.match(raw.strip())
    if drive:
        prefix, text, odd = [ABS_PREFIX, drive.group(1)], text[3:], True
    elif text.startswith("/"):
        prefix, odd = [ABS_PREFIX], True
    parts: list[str] = []
    for part in PurePosixPath(text).parts:
        if part in ("/", "."):
            continue
        if part == "..":
            part, odd = UP_PART, True
        parts.append(part)
    if not parts:
        raise PathError(f"file name {raw!r} names a folder root, not a file")
    root = f"{drive.group(1)}:/" if drive else ("/" if prefix else "")
    canonical = root + "/".join(parts)
    return "/".join(prefix + parts), canonical, odd


def describe(summary: str, notes: Sequence[str]) -> str:
    """A workflow description: what it was imported from, then every note, one per line."""
    return "\n".join([summary, *notes]) if notes else summary
