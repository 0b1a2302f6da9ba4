"""An in-process MessageQueue with SQS's semantics: delays, visibility timeouts, receive
counts and a dead-letter queue. Thread-safe; used by tests and by anything local that wants
the same queue behaviour as the cloud (the queue contract suite runs on it and on SQS).
"""

from __future__ import annotations

import itertools
import threading
import time
import uuid
from collections.abc import Callable, Sequence

from msgspec import Struct

from chalicelib.engine.ports import QueueMessage


class _Entry(Struct):
    message_id: str
    body: str
    visible_at: float
    receive_count: int = 0
    receipt: str = ""


class MemoryQueue:
    def __init__(
        self, visibility_s: float = 30.0, max_receives: int | None = None,
        dead_letter: MemoryQueue | None = None, clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.visibility_s = visibility_s
        self.max_receives = max_receives
        self.dead_letter = dead_letter
        self._clock = clock
        self._entries: dict[str, _Entry] = {}
        self._by_receipt: dict[str, str] = {}
        self._cond = threading.Condition()
        self._seq = itertools.count()

    def send(self, bodies: Sequence[str], delay_s: float = 0.0) -> None:
        now = self._clock()
        with self._cond:
            for body in bodies:
                mid = f"m{next(self._seq)}-{uuid.uuid4().hex[:8]}"
                self._entries[mid] = _Entry(mid, body, now + max(0.0, delay_s))
            self._cond.notify_all()

    def _take(self, max_messages: int, visibility_s: float) -> list[QueueMessage]:
        now = self._clock()
        out: list[QueueMessage] = []
        for entry in sorted(self._entries.values(), key=lambda e: e.visible_at):
            if len(out) >= max_messages:
                break
            if entry.visible_at > now:
                continue
            if self.max_receives is not None and entry.receive_count >= self.max_receives:
                del self._entries[entry.message_id]
                if self.dead_letter is not None:
                    self.dead_letter.send([entry.body])
                continue
            entry.receive_count += 1
            self._by_receipt.pop(entry.receipt, None)
            entry.receipt = uuid.uuid4().hex
            self._by_receipt[entry.receipt] = entry.message_id
            entry.visible_at = now + visibility_s
            out.append(QueueMessage(entry.body, entry.receipt, entry.receive_count, entry.message_id))
        return out

    def receive(
        self, max_messages: int = 1, wait_s: float = 0.0, visibility_s: float | None = None
    ) -> list[QueueMessage]:
        visibility = self.visibility_s if visibility_s is None else visibility_s
        deadline = self._clock() + wait_s
        with self._cond:
            while True:
                got = self._take(max_messages, visibility)
                left = deadline - self._clock()
                if got or left <= 0:
                    return got
                upcoming = [e.visible_at for e in self._entries.values()]
                until_visible = min(upcoming) - self._clock() if upcoming else left
                self._cond.wait(max(0.001, min(left, until_visible)))

    def _entry(self, message: QueueMessage) -> _Entry | None:
        mid = self._by_receipt.get(message.receipt)
        return self._entries.get(mid) if mid is not None else None

    def delete(self, messages: Sequence[QueueMessage]) -> None:
        with self._cond:
            for message in messages:
                entry = self._entry(message)
                if entry is not None:
                    del self._entries[entry.message_id]
                    del self._by_receipt[message.receipt]

    def extend(self, message: QueueMessage, visibility_s: float) -> None:
        with self._cond:
            entry = self._entry(message)
            if entry is not None:
                entry.visible_at = self._clock() + visibility_s

    def release(self, message: QueueMessage) -> None:
        with self._cond:
            entry = self._entry(message)
            if entry is not None:
                entry.visible_at = self._clock()
                self._cond.notify_all()

    def backlog(self) -> int:
        with self._cond:
            return len(self._entries)
