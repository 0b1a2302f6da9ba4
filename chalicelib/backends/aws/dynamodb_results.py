"""Large task results go to S3; the task item keeps a slim copy and the key of the full one.

A task item is billed one write unit per KB on every write: a 28 KB result (a task with 300
output files) makes its finish cost 28 units, and at 1,000 completions/s such results alone
would fill the run's 32 task partitions (scripts/bench-ddb-writes --outputs 300: 2,105 WCU/s
on the busiest one). So a result whose JSON passes RESULT_INLINE_BYTES is written whole to
`runs/<run>/results/<task>/<digest>.json` in the data bucket, and the item holds the same
result without its output hashes (`outputs_omitted` counts them), with only the end of its
log tail, and with `result_key` (that object's key, under the app's blob prefix). Nothing in
the engine reads the output hashes back (they are for people; the report reads the stored
log), and the engine's own bookkeeping (tries, resources) is beside the result, not in it.
"""

from __future__ import annotations

import hashlib

from msgspec.structs import replace

from chalicelib.attempt import AttemptResult, encode_result

RESULT_INLINE_BYTES = 4096  # a result up to this stays in the item (an item then costs <= 5 units)
TAIL_KEPT = 1024  # characters of a spilled result's log tail kept in the item


def needs_spill(result: AttemptResult | None) -> bytes | None:
    """The result's JSON if it is too big to keep in the item, else None."""
    if not isinstance(result, AttemptResult):
        return None
    raw = encode_result(result)
    return raw if len(raw) > RESULT_INLINE_BYTES else None


def spill_key(run_id: str, task_id: str, raw: bytes) -> str:
    digest = hashlib.sha256(raw).hexdigest()[:16]
    return f"runs/{run_id}/results/{task_id}/{digest}.json"


def slim(result: AttemptResult, key: str) -> AttemptResult:
    """What the item keeps of a spilled result."""
    tail = result.log_tail[-TAIL_KEPT:] if result.log_tail else result.log_tail
    return replace(result, outputs={}, outputs_omitted=result.outputs_omitted + len(result.outputs),
                   log_tail=tail, result_key=key)
