"""The DynamoDB table's layout: its keys, and how items map to run and task records.

The key design, the guarantees built on it and the partition arithmetic are described in
dynamodb_state.py, which is the only user of this module besides the tests.
"""

from __future__ import annotations

import base64
import hashlib
import json
from collections.abc import Collection, Mapping
from typing import Any

from msgspec.structs import replace

from chalicelib.attempt import AttemptResult, decode_result, encode_result
from chalicelib.backends.aws import ddb_expr as x
from chalicelib.backends.aws.clients import AwsClients
from chalicelib.engine.records import (
    BOOKKEEPING,
    RunRecord,
    TaskRecord,
    decode_resources,
    decode_tries,
    encode_resources,
    encode_tries,
    with_legacy,
)
from chalicelib.engine.states import RunState, TaskState

INLINE_FANIN_MAX = 64  # parents counted inside the child's item (dp) up to this many
RESULT_MAX_BYTES = 32 * 1024  # a task result above this keeps its fields but a shorter log tail

RUN_SK = "RUN"
COUNTER_SK = "C"
TASK_PREFIX = "T#"
EDGE_PREFIX = "E#"
ALL_RUNS = "RUN"
GSI_BY_STATE = "by_state"
GSI_BY_TIME = "by_time"

# The table, as CloudFormation and create_table want it (the template in .chalice/ matches).
TABLE_KEYS: dict[str, Any] = {
    "AttributeDefinitions": [
        {"AttributeName": a, "AttributeType": "S"} for a in ("pk", "sk", "rs", "ra", "rk")
    ],
    "KeySchema": [{"AttributeName": "pk", "KeyType": "HASH"}, {"AttributeName": "sk", "KeyType": "RANGE"}],
    "GlobalSecondaryIndexes": [
        {
            "IndexName": GSI_BY_STATE,
            "KeySchema": [{"AttributeName": "rs", "KeyType": "HASH"}, {"AttributeName": "rk", "KeyType": "RANGE"}],
            "Projection": {"ProjectionType": "ALL"},
        },
        {
            "IndexName": GSI_BY_TIME,
            "KeySchema": [{"AttributeName": "ra", "KeyType": "HASH"}, {"AttributeName": "rk", "KeyType": "RANGE"}],
            "Projection": {"ProjectionType": "ALL"},
        },
    ],
    "BillingMode": "PAY_PER_REQUEST",
}


def create_table(clients: AwsClients, name: str) -> None:
    """Create the table (tests, first deploy without CloudFormation) and wait for it."""
    ddb = clients.dynamodb
    ddb.create_table(TableName=name, **TABLE_KEYS)
    ddb.get_waiter("table_exists").wait(TableName=name, WaiterConfig={"Delay": 1, "MaxAttempts": 60})


# ---- keys ------------------------------------------------------------------------------------

def shard_of(task_id: str, shards: int) -> int:
    digest = hashlib.blake2b(task_id.encode("utf-8"), digest_size=4).digest()
    return int.from_bytes(digest, "big") % shards


def parent_tag(parent_id: str) -> str:
    digest = hashlib.blake2b(parent_id.encode("utf-8"), digest_size=8).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode("ascii")


def run_key(run_id: str) -> dict[str, Any]:
    return {"pk": x.text(f"R#{run_id}"), "sk": x.text(RUN_SK)}


def task_pk(run_id: str, shard: int) -> str:
    return f"R#{run_id}#T{shard:02d}"


def counter_key(run_id: str, shard: int) -> dict[str, Any]:
    return {"pk": x.text(f"R#{run_id}#C{shard}"), "sk": x.text(COUNTER_SK)}


def edge_sk(child: str, parent: str) -> str:
    return f"{EDGE_PREFIX}{child} {parent}"  # task ids never contain whitespace


def run_sort_key(created_at: float, run_id: str) -> str:
    return f"{created_at:017.6f}#{run_id}"


# ---- items <-> records --------------------------------------------------------------------------

TASK_ATTR = {
    "state": "st", "attempt": "att", "placement": "pl", "max_attempts": "maxa",
    "lease_expires": "lease", "not_before": "nb", "started_at": "sa", "finished_at": "fa",
    "exit_code": "ec", "reason": "rsn", "result": "res",
    "lost_workers": "lw", "resources": "rsc", "tries": "tries", "failed_parent": "fp",
}
TEXT_FIELDS = {"state", "placement", "reason", "failed_parent"}
# Fields whose empty value (no result, 0, {}, ()) is kept as no attribute at all.
ABSENT_WHEN_EMPTY = frozenset({"result", *BOOKKEEPING})


def logical_state(item: Mapping[str, Any]) -> TaskState:
    state = TaskState(item["st"]["S"])
    if state is TaskState.WAITING and (x.unnum(item.get("pend")) or 0) <= 0:
        return TaskState.READY
    return state


def task_record(item: Mapping[str, Any], legacy: bool = True) -> TaskRecord:
    """The record of a task item. `legacy` False: without the engine bookkeeping a result of
    the previous version carries (records.with_legacy)."""
    run_id = item["pk"]["S"][2:].rsplit("#T", 1)[0]
    res = x.untext(item.get("res"))
    ec = x.unnum(item.get("ec"))
    rsc, tries = x.untext(item.get("rsc")), x.untext(item.get("tries"))
    return with_legacy(TaskRecord(
        run_id=run_id, task_id=item["sk"]["S"][len(TASK_PREFIX):], state=logical_state(item),
        attempt=int(x.unnum(item["att"]) or 0), placement=item["pl"]["S"],
        pending=int(x.unnum(item["pend"]) or 0), max_attempts=int(x.unnum(item["maxa"]) or 1),
        lease_expires=x.unnum(item.get("lease")), not_before=x.unnum(item.get("nb")),
        started_at=x.unnum(item.get("sa")), finished_at=x.unnum(item.get("fa")),
        exit_code=None if ec is None else int(ec), reason=x.untext(item.get("rsn")),
        result=decode_result(res) if res else None, lost_workers=int(x.unnum(item.get("lw")) or 0),
        resources=decode_resources(rsc) if rsc else {}, tries=decode_tries(tries) if tries else (),
        failed_parent=x.untext(item.get("fp")),
    ), res if legacy else None)


def run_record(item: Mapping[str, Any]) -> RunRecord:
    return RunRecord(
        run_id=item["pk"]["S"][2:], name=item["name"]["S"], state=RunState(item["rs"]["S"]),
        created_at=float(x.unnum(item["ct"]) or 0.0), task_count=int(x.unnum(item["tc"]) or 0),
        spec_key=item["spec"]["S"], finished_at=x.unnum(item.get("fa")),
        options=json.loads(item["opts"]["S"]) if "opts" in item else {},
    )


def attr_value(field: str, value: Any) -> dict[str, Any]:
    if field == "result":
        return x.text(result_json(value))
    if field == "resources":
        return x.text(encode_resources(value))
    if field == "tries":
        return x.text(encode_tries(value))
    if field in TEXT_FIELDS:
        return x.text(str(value.value if isinstance(value, TaskState) else value))
    return x.num(value)


def stored_result(result: AttemptResult) -> AttemptResult:
    """The result as the item keeps it: itself, or, over RESULT_MAX_BYTES, with its log tail
    shortened (and marked), or, when its other fields are themselves huge, its timings only."""
    if len(encode_result(result)) <= RESULT_MAX_BYTES:
        return result
    slim = replace(result, log_tail=None, result_truncated=True)
    room = RESULT_MAX_BYTES - len(encode_result(slim)) - 256
    if room > 0 and result.log_tail:
        slim = replace(slim, log_tail=result.log_tail[-room:])
    if len(encode_result(slim)) > RESULT_MAX_BYTES:  # the other fields themselves are huge
        slim = AttemptResult(exit_code=result.exit_code, started_at=result.started_at,
                             finished_at=result.finished_at, duration_s=result.duration_s,
                             log_key=result.log_key, result_truncated=True)
    return slim


def result_json(result: AttemptResult) -> str:
    """The result as stored: compact JSON of `stored_result`."""
    return encode_result(stored_result(result)).decode()


def coerce_task_changes(changes: Mapping[str, Any]) -> dict[str, Any]:
    """The changes as the item will hold them, so that the record an update returns is the one
    a later read gives: a state as TaskState, a huge result as stored."""
    out = dict(changes)
    if "state" in out:
        out["state"] = TaskState(out["state"])
    if out.get("result") is not None:
        out["result"] = stored_result(out["result"])
    return out


def state_condition(e: x.Expr, states: Collection[TaskState]) -> str:
    """Condition that the item's logical state is one of `states` (READY = WAITING, pend 0)."""
    wanted = {TaskState(s) for s in states}
    plain = sorted(s.value for s in wanted - {TaskState.WAITING, TaskState.READY})
    parts: list[str] = []
    if plain:
        parts.append(f"{e.n('st')} IN ({', '.join(e.v(x.text(s)) for s in plain)})")
    waiting, ready = TaskState.WAITING in wanted, TaskState.READY in wanted
    if waiting and ready:
        parts.append(f"{e.n('st')} IN ({e.v(x.text(TaskState.WAITING.value))}, {e.v(x.text(TaskState.READY.value))})")
    elif ready:
        parts.append(f"({e.n('st')} = {e.v(x.text(TaskState.READY.value))} OR "
                     f"({e.n('st')} = {e.v(x.text(TaskState.WAITING.value))} AND {e.n('pend')} <= {e.v(x.num(0))}))")
    elif waiting:
        parts.append(f"({e.n('st')} = {e.v(x.text(TaskState.WAITING.value))} AND {e.n('pend')} > {e.v(x.num(0))})")
    if not parts:
        return f"attribute_not_exists({e.n('sk')})"  # expecting no state: always fails on a task
    return parts[0] if len(parts) == 1 else "(" + " OR ".join(parts) + ")"
