"""Large task results go to S3; the task item keeps a slim copy and the key of the full one.

A task item is billed one write unit per KB on every write: a 28 KB result (a task with 300
output files) makes its finish cost 28 units, and at 1,000 completions/s such results alone
would fill the run's 32 task partitions (scripts/bench-ddb-writes --outputs 300: 2,105 WCU/s
on the busiest one). So a result whose JSON passes RESULT_INLINE_BYTES is written whole to
`runs/<run>/results/<task>/<digest>.json` in the data bucket, and the item holds its scalar
fields (exit code, times, sizes, log_key...), the end of its log tail, `result_key` (that
object's key, under the app's blob prefix) and `result_spilled: true`. Nothing in the engine
reads the bulky fields back (`outputs` is for people; the report reads the stored log).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from typing import Any

RESULT_INLINE_BYTES = 4096  # a result up to this stays in the item (an item then costs <= 5 units)
TAIL_KEPT = 1024  # characters of a spilled result's log tail kept in the item
SCALAR_MAX = 256  # a field whose JSON is longer than this goes with the spilled part...
ENGINE_READ = ("tries", "resources", "lost_workers", "failed_parent")  # ...unless the coordinator reads it


def result_text(result: Mapping[str, Any]) -> str:
    return json.dumps(result, separators=(",", ":"), sort_keys=True, default=str)


def spill_key(run_id: str, task_id: str, text: str) -> str:
    digest = hashlib.sha256(text.encode("utf-8")).hexdigest()[:16]
    return f"runs/{run_id}/results/{task_id}/{digest}.json"


def slim(result: Mapping[str, Any], key: str) -> dict[str, Any]:
    """What the item keeps of a spilled result: every small field (numbers, short texts, small
    maps such as the cache counters), the fields the engine reads back (ENGINE_READ), the end
    of the log tail, and where the whole of it is."""
    kept: dict[str, Any] = {}
    for name, value in result.items():
        if name in ENGINE_READ or name == "log_key" or len(result_text({name: value})) <= SCALAR_MAX:
            kept[name] = value
    tail = result.get("log_tail")
    if isinstance(tail, str) and tail:
        kept["log_tail"] = tail[-TAIL_KEPT:]
    kept["result_key"] = key
    kept["result_spilled"] = True
    return kept


def needs_spill(result: Mapping[str, Any] | None) -> str | None:
    """The result's JSON if it is too big to keep in the item, else None."""
    if not result:
        return None
    text = result_text(result)
    return text if len(text.encode("utf-8")) > RESULT_INLINE_BYTES else None
