"""The keys a BlobStore (engine/ports.py) accepts: '/'-separated, relative, never leaving the
store. Every adapter checks its keys and prefixes here, so a key one store refuses is refused
by all of them (the contract suite, tests/contract/test_blob_store.py, runs on each)."""

from __future__ import annotations


def _escapes(path: str) -> bool:
    """Whether a key or prefix would leave the store: absolute, a '..' part, a NUL."""
    return path.startswith("/") or "\x00" in path or ".." in path.split("/")


def check_key(key: str) -> str:
    """A key to read or write: non-empty and relative, without a '..' part."""
    if not key or _escapes(key):
        raise ValueError(f"unsafe blob key {key!r}: keys are relative and never contain '..'")
    return key


def check_prefix(prefix: str) -> str:
    """A prefix of keys ("" for all of them): relative, without a '..' part."""
    if _escapes(prefix):
        raise ValueError(f"unsafe blob prefix {prefix!r}: prefixes are relative and never contain '..'")
    return prefix


def check_own_prefix(prefix: str) -> str:
    """A prefix `delete_prefix` may take: a safe one of the store's own keys, never a URI."""
    if "://" in prefix:
        raise ValueError(f"delete_prefix({prefix!r}): only the store's own keys can be deleted, not a URI")
    return check_prefix(prefix)
