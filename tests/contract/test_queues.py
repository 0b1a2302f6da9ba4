"""MessageQueue contract: the same behaviours in memory and on SQS (moto).

Visibility timeouts are real time (SQS counts whole seconds), so a few tests sleep ~1 s.
"""

from __future__ import annotations

import time

from chalicelib.engine.ports import MessageQueue
from tests.contract.conftest import QueuePair


def drain(queue: MessageQueue, expect: int, timeout_s: float = 5.0) -> list[str]:
    got: list[str] = []
    deadline = time.monotonic() + timeout_s
    while len(got) < expect and time.monotonic() < deadline:
        msgs = queue.receive(10, wait_s=0.2, visibility_s=30)
        got.extend(m.body for m in msgs)
        queue.delete(msgs)
    return got


def test_implements_the_port(queues: QueuePair) -> None:
    assert isinstance(queues.queue, MessageQueue)


def test_every_message_sent_is_received_once_deleted(queues: QueuePair) -> None:
    q = queues.queue
    bodies = [f'{{"n": {i}}}' for i in range(23)]  # more than one SQS batch
    q.send(bodies)
    assert sorted(drain(q, 23)) == sorted(bodies)
    assert q.receive(10, wait_s=0.0) == []


def test_a_received_message_is_invisible_until_its_timeout(queues: QueuePair) -> None:
    q = queues.queue
    q.send(["one"])
    first = q.receive(1, visibility_s=1)
    assert [m.body for m in first] == ["one"] and first[0].receive_count == 1
    assert q.receive(1) == []
    time.sleep(1.3)
    again = q.receive(1, wait_s=1, visibility_s=30)
    assert [m.body for m in again] == ["one"] and again[0].receive_count == 2
    q.delete(again)
    time.sleep(0.2)
    assert q.receive(1) == []


def test_extend_keeps_a_message_invisible(queues: QueuePair) -> None:
    q = queues.queue
    q.send(["busy"])
    (msg,) = q.receive(1, visibility_s=1)
    q.extend(msg, 30)  # a worker's heartbeat
    time.sleep(1.3)
    assert q.receive(1) == []
    q.delete([msg])


def test_release_makes_a_message_visible_at_once(queues: QueuePair) -> None:
    q = queues.queue
    q.send(["returned"])
    (msg,) = q.receive(1, visibility_s=30)
    q.release(msg)  # a worker stopping (SIGTERM) gives it back
    again = q.receive(1, wait_s=1, visibility_s=30)
    assert [m.body for m in again] == ["returned"]


def test_delayed_messages_wait(queues: QueuePair) -> None:
    q = queues.queue
    q.send(["later"], delay_s=1)
    assert q.receive(1) == []
    time.sleep(1.3)
    assert [m.body for m in q.receive(1, wait_s=1)] == ["later"]


def test_backlog_counts_waiting_and_in_flight(queues: QueuePair) -> None:
    q = queues.queue
    assert q.backlog() == 0
    q.send(["a", "b", "c"])
    q.receive(1, visibility_s=30)
    assert q.backlog() == 3
    drain(q, 2)
    assert q.backlog() == 1


def test_a_message_received_too_often_goes_to_the_dead_letter_queue(queues: QueuePair) -> None:
    q = queues.queue
    q.send(["poison"])
    for _ in range(queues.max_receives):
        assert [m.body for m in q.receive(1, wait_s=1, visibility_s=1)] == ["poison"]
        time.sleep(1.2)
    assert q.receive(1, wait_s=0.5) == []
    assert drain(queues.dead, 1) == ["poison"]


def test_acting_on_a_message_no_longer_held_is_a_no_op(queues: QueuePair) -> None:
    """A worker's late heartbeat, or its hand-back after the message was deleted: nothing to
    do, and no error (SQS answers ReceiptHandleIsInvalid, which used to reach the worker)."""
    q = queues.queue
    q.send(["work"])
    (msg,) = q.receive(1, visibility_s=30)
    q.delete([msg])
    q.extend(msg, 30)
    q.release(msg)
    q.delete([msg])
    assert q.receive(1, wait_s=0.0) == []


def test_receiving_no_messages_gives_none(queues: QueuePair) -> None:
    q = queues.queue
    q.send(["a"])
    assert q.receive(0) == []
    assert [m.body for m in q.receive(1, visibility_s=30)] == ["a"]
