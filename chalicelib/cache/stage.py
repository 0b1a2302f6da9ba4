"""How the runner uses the cache: inputs and deps go through the content store, outputs are
added to it, and memoized results replace execution.

Tiers: the shared volume (this ContentStore: EFS in the cloud, a folder locally) in front of
the origin (the blob store, or the dep's source). A Lambda's own /tmp is a second
ContentStore in front of EFS when configured (`local_tier`).

Whatever tier an object comes from, the sandbox gets a private copy verified against the
object's hash (ContentStore.copy_to): a damaged object is removed and fetched again once,
from the next tier; a second mismatch is an error. Nothing a task can write is linked to the
store, the blob store or the user's files.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import os
import tempfile
from collections.abc import Mapping
from typing import Any

from msgspec import Struct, field

from chalicelib.attempt import CacheUse
from chalicelib.cache.budget import Pins, make_room
from chalicelib.cache.cas import CacheIntegrityError, ContentStore
from chalicelib.cache.copying import copy_file_hashing
from chalicelib.cache.hashing import (
    TREE_PREFIX,
    file_sha256,
    manifest_bytes,
    parse_manifest,
    tree_hash,
    tree_manifest,
)
from chalicelib.cache.memo import MemoIndex
from chalicelib.cache.runner_deps import RunnerDeps
from chalicelib.engine.ports import BlobStore
from chalicelib.workflow.model import Dep

log = logging.getLogger("updraft.cache")


def dep_hashes(deps: tuple[Dep, ...]) -> dict[str, str]:
    """{name: sha256} of local dependencies without staging them (same names as stage_dep)."""
    out: dict[str, str] = {}
    for dep in deps:
        name, source = dep.name, dep.source
        if os.path.isdir(source):
            out.update({f"{name}/{rel}": sha for rel, sha in tree_manifest(source).items()})
        else:
            out[name] = file_sha256(source)
    return out


class CacheStats(Struct):
    hits: int = 0
    misses: int = 0
    bytes_from_origin: int = 0
    bytes_from_cache: int = 0
    memo: str = "off"

    def used(self) -> CacheUse:
        """The counts as the attempt's result reports them."""
        return CacheUse(self.hits, self.misses, self.bytes_from_origin, self.bytes_from_cache, self.memo)


class TaskCache(Struct):
    """The cache as one task attempt sees it. `memo` None: results are neither reused nor kept."""

    cas: ContentStore
    memo: MemoIndex | None = None
    local_tier: ContentStore | None = None
    stats: CacheStats = field(default_factory=CacheStats)
    # Not None: the per-instance tier (local_tier, else cas) is kept within this many bytes
    # (0: its filesystem's size) before each task is staged, and what a task stages is pinned
    # until it ends (cache/budget.py)
    budget_bytes: int | None = None
    pins: Pins | None = None
    # set per attempt by the runner: dependency files become symlinks to this runner's verified
    # read-only copies instead of private copies (cache/runner_deps.py)
    runner_deps: RunnerDeps | None = None

    def fork(self) -> TaskCache:
        """A copy with fresh per-attempt stats (and pins)."""
        return TaskCache(self.cas, self.memo, self.local_tier, budget_bytes=self.budget_bytes)

    @property
    def _budgeted(self) -> ContentStore:
        return self.local_tier if self.local_tier is not None else self.cas

    def make_room(self, need_bytes: int) -> None:
        """Before staging a task that declares `need_bytes` of disk: evict to the budget."""
        if self.budget_bytes is None:
            return
        made = make_room(self._budgeted, self.budget_bytes, need_bytes)
        if made.removed or made.kept_in_use:
            log.info("cache tier %s: evicted %d objects (%d bytes), kept %d in use; %d bytes left",
                     self._budgeted.root, len(made.removed), sum(e.size for e in made.removed),
                     len(made.kept_in_use), made.total_bytes)

    def _pin(self, sha: str) -> None:
        if self.budget_bytes is None:
            return
        if self.pins is None:
            self.pins = Pins(self._budgeted)
        self.pins.pin(sha)

    def release(self) -> None:
        """The task has ended: what it staged may be evicted again."""
        if self.pins is not None:
            self.pins.release()

    def _fetch(self, sha: str, fetch_origin: Any) -> ContentStore:
        """Make `sha` present in the nearest tier; returns that tier."""
        if self.local_tier is not None and self.local_tier.has(sha):
            self.stats.hits += 1
            return self.local_tier
        fetched = self.cas.fetch(sha, fetch_origin)
        if fetched:
            self.stats.misses += 1
            self.stats.bytes_from_origin += os.path.getsize(self.cas.path(sha))
        else:
            self.stats.hits += 1
        if self.local_tier is not None:
            self.local_tier.fetch(sha, lambda tmp: copy_file_hashing(self.cas.path(sha), tmp))
            return self.local_tier
        return self.cas

    def _stage(self, sha: str, fetch_origin: Any, dest: str) -> int:
        """A private copy of object `sha` at `dest`, verified; a damaged object (in any tier)
        is removed and fetched again, once."""
        self._pin(sha)
        for _ in range(3):
            tier = self._fetch(sha, fetch_origin)
            size = tier.copy_to(sha, dest)
            if size is not None:
                self.stats.bytes_from_cache += size
                return size
            if tier is self.local_tier:  # the shared tier may be damaged too: check it next time
                self.cas.intact(sha)
        raise CacheIntegrityError(f"cached object {sha} does not match its hash, even fetched again")

    def stage_blob(self, blobs: BlobStore, key: str, dest: str, sha: str | None) -> tuple[str, int]:
        """Stage a blob-store object into `dest` through the cache; returns (sha, bytes)."""
        if sha is None:  # unknown content: fetch it directly, then learn its hash
            size = blobs.get_file(key, dest)
            self.stats.misses += 1
            self.stats.bytes_from_origin += size
            return file_sha256(dest), size
        return sha, self._stage(sha, lambda tmp: blobs.get_file(key, tmp), dest)

    def stage_tree(self, blobs: BlobStore, members: Mapping[str, str], dest: str, tree: str) -> int | None:
        """Stage folder `tree` ("tree:<sha>") under `dest` from its manifest in the store,
        each file a verified private copy fetched from `members` on a miss; None when the
        manifest is not in the store or does not match the folder's listing."""
        manifest = self.manifest(tree)
        if manifest is None or set(manifest) != set(members):
            return None
        total = 0
        for rel, sha in manifest.items():
            key = members[rel]
            total += self._stage(sha, lambda tmp, key=key: blobs.get_file(key, tmp), os.path.join(dest, rel))
        return total

    def manifest(self, tree: str) -> dict[str, str] | None:
        """The manifest of folder hash `tree`, if the store holds it intact."""
        sha = tree[len(TREE_PREFIX):]
        if not tree.startswith(TREE_PREFIX) or not self.cas.intact(sha):
            return None
        with open(self.cas.path(sha), "rb") as fh:
            return parse_manifest(fh.read())

    def add_manifest(self, manifest: dict[str, str]) -> str:
        """Keep a folder's manifest in the store (an object like any other); its tree hash."""
        data = manifest_bytes(manifest)
        fd, tmp = tempfile.mkstemp(prefix=".tmp-manifest-", dir=self.cas.root)
        try:
            os.write(fd, data)
            os.close(fd)
            self.cas.add_file(tmp, hashlib.sha256(data).hexdigest())
        finally:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(tmp)
        return tree_hash(manifest)

    def stage_dep(self, name: str, source: str, dest: str) -> dict[str, str]:
        """Stage a dependency (a local file or folder) at `dest`; returns {name: sha}."""
        if os.path.isdir(source):
            manifest = tree_manifest(source)
            for rel, sha in manifest.items():
                self._stage_dep_file(sha, os.path.join(source, rel), os.path.join(dest, rel))
            return {f"{name}/{rel}": sha for rel, sha in manifest.items()}
        sha = file_sha256(source)
        self._stage_dep_file(sha, source, dest)
        return {name: sha}

    def _stage_dep_file(self, sha: str, source: str, dest: str) -> None:
        def fetch(tmp: str) -> str:
            return copy_file_hashing(source, tmp)

        if self.runner_deps is None:
            self._stage(sha, fetch, dest)
        else:  # one verified read-only copy per runner, the sandbox gets a symlink to it
            self.runner_deps.provide(sha, lambda new: self._stage(sha, fetch, new), dest)

    def add_output(self, path: str, sha: str) -> None:
        """Add a finished output the runner has made its own (see Sandbox.stage_out)."""
        self.cas.adopt(path, sha)

    def restore(self, outputs: Mapping[str, str], blobs: BlobStore, key_of: Any) -> int | None:
        """Publish memoized outputs into the blob store; None (run the task) if an object was
        evicted or no longer matches its hash: a memoized result is checked before it stands
        in for a run (reading the outputs once costs far less than the task would)."""
        files: dict[str, str] = {}
        for path, sha in outputs.items():
            if not isinstance(sha, str):
                return None
            if sha.startswith(TREE_PREFIX):
                manifest = self.manifest(sha)
                if manifest is None:
                    return None
                files.update({f"{path}/{rel}": fsha for rel, fsha in manifest.items()})
            else:
                files[path] = sha
        if not all(self.cas.intact(sha) for sha in files.values()):
            return None
        total = 0
        for path, sha in files.items():
            total += blobs.put_file(key_of(path), self.cas.path(sha))
        self.stats.bytes_from_cache += total
        return total
