"""Large task results go to S3; the task item keeps a slim copy and the key of the full one.

A task item is billed one write unit per KB on every write: a 28 KB result (a task with 300
output files) makes its finish cost 28 units, and at 1,000 completions/s such results alone
would fill the run's 32 task partitions (scripts/bench-ddb-writes --outputs 300: 2,105 WCU/s
on the busiest one). So a result whose JSON passes RESULT_INLINE_BYTES is written whole to
`runs/<run>/results/<task>/<digest>.json` in the data bucket, and the item holds its scalar
fields (exit code, times, sizes, log_key...), the end of its log tail, `result_key` (that
object's key, under the app's blob prefix) and `result_spilled` (AttemptResult's fields). Nothing in the engine
reads the bulky fields back (`outputs` is for people; the report reads the stored log).
"""

from __future__ import annotations

import hashlib

from msgspec.structs import replace

from chalicelib.attempt import AttemptResult, encode_result

RESULT_INLINE_BYTES = 4096  # a result up to this stays in the item (an item then costs <= 5 units)
TAIL_KEPT = 1024  # characters of a spilled result's log tail kept in the item
SCALAR_MAX = 256  # output hashes whose JSON is longer than this go with the spilled part only


def result_text(result: AttemptResult) -> str:
    return encode_result(result).decode()


def spill_key(run_id: str, task_id: str, text: str) -> str:
    digest = hashlib.sha256(text.encode("utf-8")).hexdigest()[:16]
    return f"runs/{run_id}/results/{task_id}/{digest}.json"


def slim(result: AttemptResult, key: str) -> AttemptResult:
    """What the item keeps of a spilled result: its scalar fields and cache counters, the output
    hashes when they are few, the end of the log tail, and where the whole of it is. (The
    engine's own bookkeeping is not in the result: TaskRecord fields, always in the item.)"""
    outputs = result.outputs if len(encode_result(AttemptResult(outputs=result.outputs))) <= SCALAR_MAX else {}
    tail = result.log_tail[-TAIL_KEPT:] if result.log_tail else result.log_tail
    return replace(result, outputs=outputs, log_tail=tail, result_key=key, result_spilled=True)


def needs_spill(result: AttemptResult | None) -> str | None:
    """The result's JSON if it is too big to keep in the item, else None."""
    if result is None:
        return None
    text = result_text(result)
    return text if len(text.encode("utf-8")) > RESULT_INLINE_BYTES else None
