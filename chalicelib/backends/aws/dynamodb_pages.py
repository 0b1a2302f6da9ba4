"""A page of a run's tasks from its S task partitions, reading only what the page needs.

A run's task items are spread over S partitions (dynamodb_items.shard_of); within each, a
Query returns them in sort key order (T#<task id>). A page in task id order is the S sorted
streams merged: each shard is read a few items at a time (`sk > T#<position>`), and an item is
taken only once every shard that could still hold a smaller id has been read past it. A page
of n tasks over S shards so reads about n + S items (not the whole run, which is what sorting
by submission order needs), and the next page starts after the last task id of this one.

A sparse state filter (a few FAILED among 100,000) would make one page read the whole run:
after PAGE_READ_BUDGET items looked at the page ends early, holding what it found, at the
position every shard has been read past; the caller goes on from there.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from chalicelib.backends.aws.dynamodb_items import TASK_PREFIX, task_record
from chalicelib.engine.records import TaskPage

PAGE_READ_BUDGET = 4000  # task items one page may look at (~2 MB, ~250 read units)
FIRST_READ_MIN = 4  # items asked of each shard at first
SHARD_READ_MAX = 400  # items asked of one shard in one Query (doubling while few match)

Item = dict[str, Any]
# (shard, read after this task id, at most n items) -> (items, the last id looked at or None at
# the shard's end, how many items were looked at, filtered out ones included)
ShardReader = Callable[[int, str, int], tuple[list[Item], "str | None", int]]


class _Shard:
    __slots__ = ("buf", "done", "index", "n", "seen")

    def __init__(self, index: int, seen: str, n: int) -> None:
        self.index = index
        self.seen = seen  # every item of the shard up to this id has been read
        self.n = n
        self.done = False  # read to its end
        self.buf: deque[tuple[str, Item]] = deque()

    @property
    def waiting(self) -> bool:
        """Nothing buffered, more to read."""
        return not self.buf and not self.done


def task_id_of(item: Item) -> str:
    return str(item["sk"]["S"][len(TASK_PREFIX):])


def page_merge(
    read: ShardReader, shards: int, limit: int, after: str | None, parallelism: int = 8,
    budget: int = PAGE_READ_BUDGET,
) -> TaskPage:
    """Up to `limit` tasks after task id `after`, in task id order, and the next position."""
    first = max(FIRST_READ_MIN, -(-(limit + 1) // shards) + 1)  # ~limit/S each
    state = [_Shard(i, after or "", min(first, SHARD_READ_MAX)) for i in range(shards)]
    out: list[Item] = []
    looked = 0
    while True:
        _take(state, out, limit)
        if len(out) > limit:
            return TaskPage([task_record(i) for i in out[:limit]], task_id_of(out[limit - 1]))
        waiting = [s for s in state if s.waiting]
        if not waiting:
            return TaskPage([task_record(i) for i in out], None)
        if looked >= budget:
            return TaskPage([task_record(i) for i in out], min(s.seen for s in waiting))
        head = min((s.buf[0][0] for s in state if s.buf), default=None)
        need = [s for s in waiting if head is None or s.seen < head]
        left = limit + 1 - len(out)  # a share of what is still missing, for a shard that matched well
        share = -(-left // max(1, sum(not s.done for s in state)))
        looked += _read(read, need, parallelism, max(FIRST_READ_MIN, share + 1))


def _take(state: list[_Shard], out: list[Item], limit: int) -> None:
    """Move items to `out` in id order while no unread part of a shard could come first."""
    while len(out) <= limit:
        heads = [s for s in state if s.buf]
        if not heads:
            return
        best = min(heads, key=lambda s: s.buf[0][0])
        key = best.buf[0][0]
        if any(s.waiting and s.seen < key for s in state):
            return
        out.append(best.buf.popleft()[1])


def _read(read: ShardReader, need: list[_Shard], parallelism: int, share: int) -> int:
    def one(s: _Shard) -> tuple[list[Item], str | None, int]:
        return read(s.index, s.seen, s.n)

    if len(need) == 1:
        answers = [one(need[0])]
    else:
        with ThreadPoolExecutor(max_workers=min(parallelism, len(need))) as pool:
            answers = list(pool.map(one, need))
    looked = 0
    for s, (items, seen, scanned) in zip(need, answers, strict=True):
        looked += scanned
        s.buf.extend((task_id_of(i), i) for i in items)
        if seen is None:
            s.done = True
        else:
            s.seen = seen
        # a shard whose items mostly did not match (a sparse filter) reads twice as many next
        s.n = min(SHARD_READ_MAX, 2 * s.n if 2 * len(items) < scanned else share)
    return looked
