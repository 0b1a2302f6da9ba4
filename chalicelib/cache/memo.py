"""Task-result memoization: a task whose key has a stored result is not run again.

The key hashes what determines the outputs and nothing else: the command (argv or shell
text), the task's own environment, the identity of the tool image (UPDRAFT_IMAGE_ID, else the
content hash of the program the command starts), the content hashes of the inputs and deps,
and the output names. No run id, no absolute paths, no mtimes.

Entries are written only by the runner, after stage-out has hashed the outputs, and carry an
HMAC over their key and content. The secret is UPDRAFT_MEMO_KEY when set (withheld from every
task's environment; in the cloud the runner is also non-dumpable, so a task cannot read it
from /proc), else a random key in `<index>.key` (mode 0600), created on first use. An entry
without a valid MAC - forged, copied to another key, from before MACs - is ignored (the task
runs). What this does not stop: a task running as the same user as the runner can read the
key file (locally always; in the cloud when UPDRAFT_MEMO_KEY is not set) and delete entries or
objects (the tasks then run again). See docs/reliability.md, "User data is inviolable".
"""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import json
import os
import secrets
import shutil
import tempfile
from collections.abc import Mapping
from typing import Any

from chalicelib.cache.hashing import TREE_PREFIX, file_sha256
from chalicelib.workflow.model import Task

_image_ids: dict[str, str] = {}
_which: dict[tuple[str, str | None], str | None] = {}


def image_id(task: Task, path_var: str | None = None) -> str:
    """Identity of the software that runs the task."""
    explicit = os.environ.get("UPDRAFT_IMAGE_ID")
    if explicit:
        return explicit
    program = "/bin/sh" if task.shell is not None else (task.command[0] if task.command else "")
    path_var = path_var or os.environ.get("PATH")
    if (program, path_var) not in _which:
        _which[(program, path_var)] = program if "/" in program else shutil.which(program, path=path_var)
    found = _which[(program, path_var)]
    if not found:
        return f"missing:{program}"
    if found not in _image_ids:
        try:
            _image_ids[found] = "sha256:" + file_sha256(os.path.realpath(found))
        except OSError:
            return f"unreadable:{program}"
    return _image_ids[found]


def memo_key(
    task: Task, input_hashes: Mapping[str, str], dep_hashes: Mapping[str, str], image: str
) -> str:
    payload = {
        "v": 1,
        "argv": list(task.command),
        "shell": task.shell,
        "env": sorted(task.env.items()),
        "image": image,
        "inputs": sorted(input_hashes.items()),
        "deps": sorted(dep_hashes.items()),
        "outputs": sorted(task.outputs),
    }
    blob = json.dumps(payload, separators=(",", ":"), ensure_ascii=False).encode()
    return hashlib.sha256(blob).hexdigest()


_HEX = frozenset("0123456789abcdef")


def usable_record(record: Mapping[str, Any], outputs: tuple[str, ...]) -> bool:
    """Whether a memo record can stand in for running a task with these outputs: exactly
    those outputs, each a sha256 hex digest (a folder's: "tree:" and its manifest's; the
    objects themselves are verified against their hashes before they are published: TaskCache.restore)."""
    got = record.get("outputs")
    if not isinstance(got, dict) or set(got) != set(outputs):
        return False
    return all(isinstance(h, str) and _is_sha(h.removeprefix(TREE_PREFIX)) for h in got.values())


def _is_sha(h: str) -> bool:
    return len(h) == 64 and _HEX.issuperset(h)


MEMO_KEY_VAR = "UPDRAFT_MEMO_KEY"


def memo_secret(root: str) -> bytes:
    """The secret memo entries are signed with: UPDRAFT_MEMO_KEY, else `<root>.key`."""
    raw = os.environ.get(MEMO_KEY_VAR)
    if raw:
        return raw.encode()
    path = root + ".key"
    try:
        with open(path, "rb") as fh:
            key = fh.read().strip()
        if key:
            return key
    except FileNotFoundError:
        pass
    os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=".tmp-key-", dir=os.path.dirname(path) or ".")  # mode 0600
    try:
        os.write(fd, secrets.token_hex(32).encode())
        os.close(fd)
        with contextlib.suppress(FileExistsError):  # another process made it first: use theirs
            os.link(tmp, path)
    finally:
        os.unlink(tmp)
    with open(path, "rb") as fh:
        return fh.read().strip()


def _mac(secret: bytes, key: str, record: Mapping[str, Any]) -> str:
    blob = key.encode() + b"\n" + json.dumps(record, sort_keys=True, separators=(",", ":")).encode()
    return hmac.new(secret, blob, hashlib.sha256).hexdigest()


class MemoIndex:
    """key -> {"outputs": {path: sha256}, ..., "mac": ...} as one small JSON file per key."""

    def __init__(self, root: str, secret: bytes | None = None) -> None:
        self.root = os.path.abspath(root)
        os.makedirs(self.root, exist_ok=True)
        self.secret = secret if secret is not None else memo_secret(self.root)

    def _path(self, key: str) -> str:
        return os.path.join(self.root, key[:2], f"{key}.json")

    def get(self, key: str) -> dict[str, Any] | None:
        try:
            with open(self._path(key), encoding="utf-8") as fh:
                data = json.load(fh)
        except (OSError, ValueError):
            return None
        if not isinstance(data, dict) or not isinstance(data.get("outputs"), dict):
            return None
        mac = data.pop("mac", None)
        if not isinstance(mac, str) or not hmac.compare_digest(mac, _mac(self.secret, key, data)):
            return None  # not written by a runner holding the secret (or for another key)
        return data

    def put(self, key: str, record: Mapping[str, Any]) -> None:
        final = self._path(key)
        os.makedirs(os.path.dirname(final), exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=".tmp-", dir=os.path.dirname(final))
        try:
            signed = {**record, "mac": _mac(self.secret, key, json.loads(json.dumps(dict(record))))}
            with os.fdopen(fd, "w", encoding="utf-8") as fh:
                json.dump(signed, fh, separators=(",", ":"))
            os.replace(tmp, final)
        except BaseException:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(tmp)
            raise

    def count(self) -> int:
        return sum(len(files) for _, _, files in os.walk(self.root))
