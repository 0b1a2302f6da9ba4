"""DynamoDB state store: one table, one item per run, one item per task.

Key design (table key: pk, sk, both strings)
--------------------------------------------

    item            pk                         sk                  written
    run             R#<run>                    RUN                 submit, finish, cancel, resume
    task            R#<run>#T<k>               T#<task>            each transition of the task
    state counter   R#<run>#C<j>               C                   once per coordinator batch
    fan-in edge     R#<run>#T<k>               E#<child> <parent>  once per edge, only for
                                                                   children with > 64 parents

  k = blake2b(task id) mod S (S = task_shards, default 32; fixed per run, kept in the run item)
  j = random in [0, C)       (C = counter_shards, default 4; idem)

  GSI by_state   hash rs (run state)  range rk ("<created_at>#<run>")  runs by state, newest first
  GSI by_time    hash ra ("RUN")      range rk                         all runs, newest first
  Only run items carry rs/ra/rk, so task items never touch an index: a task transition is
  exactly one write unit, never two or three.

Task item attributes: st state, att attempt, pl placement, pend parents not yet finished,
maxa, lease, nb (not before), sa, fa, ec, rsn, res (result JSON: chalicelib/attempt.py), lw (lost
workers), rsc (resource overrides, JSON), tries (earlier attempts, JSON), fp (failed parent),
seq (submission order),
dp (string set of 8-byte digests of the parents already counted), fan ("E" when the task has
more than 64 parents: its counted parents are separate edge items instead of dp, so no item
grows with fan-in). A task with st=WAITING and pend=0 *is* READY: the decrement that reaches
zero is the transition (one write, not two), and every read and condition maps it.

Guarantees
----------
- Every transition is one UpdateItem whose condition names the expected states and the
  attempt; losing it raises StateConflictError with the current item
  (ReturnValuesOnConditionCheckFailure=ALL_OLD), so a late event of an old attempt can never
  overwrite a newer one.
- complete_parent counts each (parent, child) once: `ADD dp :tag, SET pend = pend - 1` on
  condition `NOT contains(dp, :tag)`. Exactly one decrement reaches zero; that caller sees
  it (ReturnValues=ALL_NEW) and counts the child as READY. Children with many parents use a
  transaction (Put edge item if absent + compare-and-set pend), same guarantee.
- Counters: each transition adds -1/+1 to an in-memory delta; deltas are written once per
  `batch()` (one coordinator step) or per write outside a batch, as one ADD to a random
  counter shard. `counts` sums the shards (one strongly consistent BatchGetItem). A
  coordinator that dies between a transition and its flush leaves the counters showing the
  task in its older state: a run can then look unfinished, never finished early; the sweeper
  re-counts quiet runs from the task items and finishes them (`recount`, `finish_recounted`);
  a resumed run's shards restart from its items' exact counts.

Partition arithmetic (per-partition limits: 1,000 write units/s, 3,000 read units/s)
-------------------------------------------------------------------------------------
One run at 1,000 task completions per second (the default Lambda concurrency), each task
with E = 2 parents on average, a function task costs on its own item and its children's:
dispatch 1 + claim 1 + completion 1 + one decrement per incoming edge E = 5 write units
(items stay under 1 KB). 1,000 tasks/s x 5 = 5,000 WCU/s over S = 32 task partitions =
~160 WCU/s each (16% of 1,000). Counter shards: one flush per coordinator batch (2,000
events/s - a completion and its destination copy per function task - in batches of 10 =
200/s) plus one per claim, made outside a batch by the task functions (1,000/s): 1,200 WCU/s
over C = 4 partitions = 300 each (30%); `counts` after every batch reads C items strongly
consistent: 200 x 4 = 800 RCU/s in total, 200 per partition (7% of 3,000). The run item is
written a handful of times per run. Even with batches of one event the counter partitions
see (2,000 + 1,000)/4 = 750 WCU/s (75%); raise C for more. A
100,000-task run is 100,000 items of ~0.3-1 KB (the largest is a failed task carrying a 4 KB
log tail; a result over 4 KB goes to S3 and the item keeps a slim copy, dynamodb_results.py;
inline results are capped at RESULT_MAX_BYTES), far from the 400 KB item limit.

Measured (scripts/bench-ddb-writes, docs/benchmarks.md): 5.9 write units per completion with
E = 1.8 - the claim's own counter write (the task function claims outside a coordinator batch)
comes on top of the 5 above - so ~5,900 WCU/s for the table at 1,000 completions/s, which is
more than a new on-demand table's first 4,000 (docs/aws.md: pre-warm it or provision it); no
partition passes ~45% of its 1,000 (tests/contract/test_dynamodb_partitions.py).

Listing a run's tasks by state pages through its S task partitions (dynamodb_pages.py): their
key-ordered Queries merged in task id order, a few items per shard at a time, so a page of n
tasks reads ~n items plus a few per shard, and a sparse state filter stops at a read budget.
Only a full listing (`iter_tasks`, `list_tasks` without a limit: status, resume, recount) reads
every item of the run (100,000 tasks ~ 50 MB ~ 6,000 read units, $0.0008). A GSI on state
would instead add two index writes to every transition (index key change = a delete and a
put), doubling the cost of the hot path.
"""

from __future__ import annotations

import json
import logging
import random
import threading
import time
from collections.abc import Callable, Collection, Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from typing import Any, NoReturn

from msgspec.structs import replace

from chalicelib.backends.aws import ddb_expr as x
from chalicelib.backends.aws.clients import AwsClients, error_code
from chalicelib.backends.aws.config import DYNAMODB_MAX_BATCH_GET, DYNAMODB_MAX_BATCH_WRITE, AwsConfig
from chalicelib.backends.aws.dynamodb_items import (
    ABSENT_WHEN_EMPTY,
    ALL_RUNS,
    GSI_BY_STATE,
    GSI_BY_TIME,
    INLINE_FANIN_MAX,
    RESULT_MAX_BYTES,
    RUN_SK,
    TABLE_KEYS,
    TASK_ATTR,
    TASK_PREFIX,
    attr_value,
    coerce_task_changes,
    counter_key,
    create_table,
    edge_sk,
    logical_state,
    parent_tag,
    run_key,
    run_record,
    run_sort_key,
    shard_of,
    state_condition,
    task_pk,
    task_record,
)
from chalicelib.backends.aws.dynamodb_pages import ShardReader, page_merge
from chalicelib.backends.aws.dynamodb_results import needs_spill, slim, spill_key
from chalicelib.engine.ports import complete_each, update_each
from chalicelib.engine.records import (
    RunRecord,
    TaskPage,
    TaskRecord,
    check_limit,
    check_mutable,
    check_new_tasks,
    with_legacy,
)
from chalicelib.engine.states import IN_FLIGHT, RunState, TaskState
from chalicelib.errors import NotFoundError, StateConflictError, UpdraftError

__all__ = ["INLINE_FANIN_MAX", "RESULT_MAX_BYTES", "TABLE_KEYS", "DynamoStateStore", "StoreThrottledError",
           "create_table"]

log = logging.getLogger("updraft.store")

BATCH_WRITE_TRIES = 8
CAS_TRIES = 50


class StoreThrottledError(UpdraftError):
    """DynamoDB kept refusing a batch write (throttling); nothing was acknowledged as done."""


class DynamoStateStore:
    """StateStore on one DynamoDB table (see the module docstring for the key design)."""

    def __init__(self, config: AwsConfig, clients: AwsClients | None = None, parallelism: int = 8) -> None:
        self.config = config
        self.clients = clients or AwsClients(config)
        self.table = config.table
        self.parallelism = parallelism
        self._lock = threading.RLock()
        self._local = threading.local()
        self._deltas: dict[str, dict[str, int]] = {}
        self._shards: dict[str, tuple[int, int]] = {}  # run -> (task shards, counter shards)
        self._edge_mode: set[tuple[str, str]] = set()  # (run, child) known to use edge items

    @property
    def _ddb(self) -> Any:
        return self.clients.dynamodb

    def close(self) -> None:
        self.flush()

    # ---- batching of counter writes -----------------------------------------------------------

    @contextmanager
    def batch(self) -> Iterator[None]:
        depth = getattr(self._local, "depth", 0)
        self._local.depth = depth + 1
        try:
            yield
        finally:
            self._local.depth = depth
            if depth == 0:
                self.flush()

    def _count(self, run_id: str, old: TaskState | None, new: TaskState, n: int = 1) -> None:
        if old is new:
            return
        with self._lock:
            d = self._deltas.setdefault(run_id, {})
            if old is not None:
                d[old.value] = d.get(old.value, 0) - n
            d[new.value] = d.get(new.value, 0) + n
        if getattr(self._local, "depth", 0) == 0:
            self.flush()

    def flush(self) -> None:
        """Write the pending counter deltas: one ADD per run to a random counter shard."""
        with self._lock:
            pending, self._deltas = self._deltas, {}
        for run_id, delta in pending.items():
            nonzero = {s: n for s, n in delta.items() if n}
            if not nonzero:
                continue
            _, cshards = self._run_shards(run_id)
            e = x.Expr()
            adds = [f"{e.n(s)} {e.v(x.num(n))}" for s, n in sorted(nonzero.items())]
            adds.append(f"{e.n('v')} {e.v(x.num(1))}")
            self._ddb.update_item(
                TableName=self.table, Key=counter_key(run_id, random.randrange(cshards)),
                UpdateExpression=f"ADD {', '.join(adds)} SET {e.n('at')} = {e.v(x.num(time.time()))}",
                **e.kwargs(),
            )

    # ---- runs ------------------------------------------------------------------------------

    def _run_shards(self, run_id: str) -> tuple[int, int]:
        shards = self._shards.get(run_id)
        if shards is None:
            item = self._get_run_item(run_id)
            shards = (int(x.unnum(item["ts"]) or 1), int(x.unnum(item["cs"]) or 1))
            self._shards[run_id] = shards
        return shards

    def _get_run_item(self, run_id: str) -> dict[str, Any]:
        resp = self._ddb.get_item(TableName=self.table, Key=run_key(run_id), ConsistentRead=True)
        item = resp.get("Item")
        if item is None:
            raise NotFoundError(f"no run {run_id!r} in table {self.table}; GET /runs lists them")
        return dict(item)

    def create_run(self, run: RunRecord, tasks: Sequence[TaskRecord]) -> None:
        check_new_tasks(run.run_id, tasks)
        existing = self._ddb.get_item(TableName=self.table, Key=run_key(run.run_id), ConsistentRead=True).get("Item")
        if existing is not None:
            raise StateConflictError(f"run {run.run_id} already exists", run_record(existing))
        tshards, cshards = self.config.task_shards, self.config.counter_shards
        self._shards[run.run_id] = (tshards, cshards)
        puts = [{"PutRequest": {"Item": self._task_item(t, i, tshards)}} for i, t in enumerate(tasks)]
        per_state: dict[str, int] = {}
        for t in tasks:
            per_state[t.state.value] = per_state.get(t.state.value, 0) + 1
        counter = {**counter_key(run.run_id, 0), **{s: x.num(n) for s, n in per_state.items()},
                   "v": x.num(0), "at": x.num(time.time())}
        puts.append({"PutRequest": {"Item": counter}})
        self._batch_write(puts)
        item = {
            **run_key(run.run_id), "name": x.text(run.name), "rs": x.text(run.state.value),
            "ra": x.text(ALL_RUNS), "rk": x.text(run_sort_key(run.created_at, run.run_id)),
            "ct": x.num(run.created_at), "tc": x.num(run.task_count), "spec": x.text(run.spec_key),
            "opts": x.jsontext(run.options), "ts": x.num(tshards), "cs": x.num(cshards),
        }
        if run.finished_at is not None:
            item["fa"] = x.num(run.finished_at)
        try:
            self._ddb.put_item(TableName=self.table, Item=item, ConditionExpression="attribute_not_exists(sk)")
        except Exception as exc:
            if error_code(exc) == "ConditionalCheckFailedException":
                raise StateConflictError(f"run {run.run_id} already exists", self.get_run(run.run_id)) from None
            raise

    def _task_item(self, t: TaskRecord, seq: int, tshards: int) -> dict[str, Any]:
        item: dict[str, Any] = {
            "pk": x.text(task_pk(t.run_id, shard_of(t.task_id, tshards))),
            "sk": x.text(TASK_PREFIX + t.task_id), "st": x.text(t.state.value),
            "att": x.num(t.attempt), "pl": x.text(t.placement), "pend": x.num(t.pending),
            "maxa": x.num(t.max_attempts), "seq": x.num(seq),
        }
        if t.pending > INLINE_FANIN_MAX:
            item["fan"] = x.text("E")
        for name in ("lease_expires", "not_before", "started_at", "finished_at", "exit_code", "reason"):
            value = getattr(t, name)
            if value is not None:
                item[TASK_ATTR[name]] = attr_value(name, value)
        for name in ABSENT_WHEN_EMPTY:
            value = getattr(t, name)
            if value:
                item[TASK_ATTR[name]] = attr_value(name, value)
        return item

    def get_run(self, run_id: str) -> RunRecord:
        return run_record(self._get_run_item(run_id))

    def list_runs(self, limit: int = 50, state: RunState | None = None) -> list[RunRecord]:
        check_limit(limit)
        e = x.Expr()
        if state is None:
            index, cond = GSI_BY_TIME, f"{e.n('ra')} = {e.v(x.text(ALL_RUNS))}"
        else:
            index, cond = GSI_BY_STATE, f"{e.n('rs')} = {e.v(x.text(RunState(state).value))}"
        out: list[RunRecord] = []
        kwargs: dict[str, Any] = {}
        while len(out) < limit:
            resp = self._ddb.query(
                TableName=self.table, IndexName=index, KeyConditionExpression=cond,
                ScanIndexForward=False, Limit=limit - len(out), **e.kwargs(), **kwargs,
            )
            out.extend(run_record(item) for item in resp.get("Items", []))
            if "LastEvaluatedKey" not in resp:
                break
            kwargs["ExclusiveStartKey"] = resp["LastEvaluatedKey"]
        return out[:limit]

    def update_run(self, run_id: str, expect: Collection[RunState], changes: Mapping[str, Any]) -> RunRecord:
        check_mutable("run", changes)
        e = x.Expr()
        sets: list[str] = []
        removes: list[str] = []
        for field, value in changes.items():
            attr = {"state": "rs", "finished_at": "fa", "options": "opts"}[field]
            if value is None:
                removes.append(e.n(attr))
            elif field == "state":
                sets.append(f"{e.n(attr)} = {e.v(x.text(RunState(value).value))}")
            elif field == "options":
                sets.append(f"{e.n(attr)} = {e.v(x.jsontext(value))}")
            else:
                sets.append(f"{e.n(attr)} = {e.v(x.num(value))}")
        if "state" in changes and RunState(changes["state"]) is RunState.RUNNING:
            cur = self.get_run(run_id)  # the rebase below writes: not for a call that will fail
            if cur.state not in expect:
                raise _run_conflict(cur, expect)
            removes.append(e.n("fc"))  # a resumed run counts from its shards again...
            self._rebase_counters(run_id)  # ...which start from its items' exact counts
        expect_vals = ", ".join(e.v(x.text(RunState(s).value)) for s in expect) or e.v(x.text("-"))
        cond = f"attribute_exists({e.n('sk')}) AND {e.n('rs')} IN ({expect_vals})"
        update = (" SET " + ", ".join(sets) if sets else "") + (" REMOVE " + ", ".join(removes) if removes else "")
        if not update:
            update = f"SET {e.n('rs')} = {e.n('rs')}"
        try:
            resp = self._ddb.update_item(
                TableName=self.table, Key=run_key(run_id), UpdateExpression=update.strip(),
                ConditionExpression=cond, ReturnValues="ALL_NEW",
                ReturnValuesOnConditionCheckFailure="ALL_OLD", **e.kwargs(),
            )
        except Exception as exc:
            self._raise_run_conflict(exc, run_id, expect)
        return run_record(resp["Attributes"])

    def _raise_run_conflict(self, exc: Exception, run_id: str, expect: Collection[RunState]) -> NoReturn:
        """A failed conditional write of the run item: not found, or the conflict with the
        state it holds (any other error as it is)."""
        if error_code(exc) != "ConditionalCheckFailedException":
            raise exc
        old = getattr(exc, "response", {}).get("Item")
        if not old:
            raise NotFoundError(f"no run {run_id!r} in table {self.table}") from None
        raise _run_conflict(run_record(old), expect) from None

    def delete_run(self, run_id: str, expect: Collection[RunState]) -> RunRecord:
        """The task, edge and counter items go first, the run item last and on condition of
        its state: a delete cut short leaves the run listed, and the same call finishes it.
        Results spilled to S3 (`runs/RUN/results/...`) are the run's blobs: the run service's
        delete (service/cleanup.py) removes them with the rest of `runs/RUN/`."""
        cur = self.get_run(run_id)
        if cur.state not in expect:
            raise _run_conflict(cur, expect)
        tshards, cshards = self._run_shards(run_id)
        keys: list[dict[str, Any]] = [counter_key(run_id, j) for j in range(cshards)]
        for shard in range(tshards):  # task items and the edge items beside them
            e = x.Expr()
            cond = f"{e.n('pk')} = {e.v(x.text(task_pk(run_id, shard)))}"
            kwargs: dict[str, Any] = {}
            while True:
                resp = self._ddb.query(TableName=self.table, KeyConditionExpression=cond, ConsistentRead=True,
                                       ProjectionExpression=f"{e.n('pk')}, {e.n('sk')}", **e.kwargs(), **kwargs)
                keys.extend({"pk": i["pk"], "sk": i["sk"]} for i in resp.get("Items", []))
                if "LastEvaluatedKey" not in resp:
                    break
                kwargs["ExclusiveStartKey"] = resp["LastEvaluatedKey"]
        with self._lock:
            self._deltas.pop(run_id, None)
        self._batch_write([{"DeleteRequest": {"Key": key}} for key in keys])
        e = x.Expr()
        expect_vals = ", ".join(e.v(x.text(RunState(s).value)) for s in expect) or e.v(x.text("-"))
        try:
            self._ddb.delete_item(TableName=self.table, Key=run_key(run_id),
                                  ConditionExpression=f"{e.n('rs')} IN ({expect_vals})",
                                  ReturnValuesOnConditionCheckFailure="ALL_OLD", **e.kwargs())
        except Exception as exc:
            self._raise_run_conflict(exc, run_id, expect)
        self._shards.pop(run_id, None)
        self._edge_mode = {k for k in self._edge_mode if k[0] != run_id}
        return cur

    # ---- tasks -----------------------------------------------------------------------------

    def _task_key(self, run_id: str, task_id: str) -> dict[str, Any]:
        tshards, _ = self._run_shards(run_id)
        return {"pk": x.text(task_pk(run_id, shard_of(task_id, tshards))), "sk": x.text(TASK_PREFIX + task_id)}

    def _get_task_item(self, run_id: str, task_id: str) -> dict[str, Any] | None:
        resp = self._ddb.get_item(TableName=self.table, Key=self._task_key(run_id, task_id), ConsistentRead=True)
        item = resp.get("Item")
        return None if item is None else dict(item)

    def get_task(self, run_id: str, task_id: str) -> TaskRecord:
        item = self._get_task_item(run_id, task_id)
        if item is None:
            raise NotFoundError(f"no task {task_id!r} in run {run_id!r}")
        return task_record(item)

    def list_tasks(
        self, run_id: str, states: Collection[TaskState] | None = None, limit: int | None = None,
    ) -> list[TaskRecord]:
        check_limit(limit)
        if limit is None:
            return list(self.iter_tasks(run_id, states))
        self._run_shards(run_id)  # NotFoundError for an unknown run, even with limit 0
        out: list[TaskRecord] = []
        after: str | None = None
        while len(out) < limit:  # pages read only what they need (task id order)
            page = self.page_tasks(run_id, states, limit - len(out), after)
            out.extend(page.tasks)
            if page.after is None:
                break
            after = page.after
        return out

    def page_tasks(
        self, run_id: str, states: Collection[TaskState] | None = None, limit: int = 256,
        after: str | None = None,
    ) -> TaskPage:
        """Task id order: the S shards' key-ordered Queries (`sk > T#<after>`) merged, each
        reading a few items at a time, so a page of n reads ~n items (more with a sparse
        `states`, at most dynamodb_pages.PAGE_READ_BUDGET: then the page ends early, at the position it
        reached)."""
        if limit < 1:
            raise ValueError(f"limit must be 1 or more, not {limit}")
        tshards, _ = self._run_shards(run_id)
        return page_merge(self._shard_reader(run_id, states), tshards, limit, after, self.parallelism)

    def _shard_reader(
        self, run_id: str, states: Collection[TaskState] | None,
    ) -> ShardReader:
        def read(shard: int, start: str, n: int) -> tuple[list[dict[str, Any]], str | None, int]:
            """Up to n items of one shard after task id `start`: (items, last id looked at or
            None at the shard's end, how many were looked at)."""
            e = x.Expr()
            cond = (f"{e.n('pk')} = {e.v(x.text(task_pk(run_id, shard)))} "
                    f"AND {e.n('sk')} > {e.v(x.text(TASK_PREFIX + start))}")
            kwargs: dict[str, Any] = {"FilterExpression": state_condition(e, states)} if states is not None else {}
            resp = self._ddb.query(TableName=self.table, KeyConditionExpression=cond, ConsistentRead=True,
                                   Limit=n, **e.kwargs(), **kwargs)
            last = resp.get("LastEvaluatedKey")
            seen = last["sk"]["S"][len(TASK_PREFIX):] if last else None
            return list(resp.get("Items", [])), seen, int(resp.get("ScannedCount", len(resp.get("Items", []))))
        return read

    def iter_tasks(self, run_id: str, states: Collection[TaskState] | None = None) -> Iterator[TaskRecord]:
        # The shards are read in parallel and merged by submission order, so the raw items are
        # all read first; only the records are built one at a time.
        items = sorted(self._task_items(run_id, states), key=lambda i: int(i["seq"]["N"]))
        return map(task_record, items)

    def _task_items(
        self, run_id: str, states: Collection[TaskState] | None, consistent: bool = True,
        extra_filter: Callable[[x.Expr], str] | None = None,
    ) -> list[dict[str, Any]]:
        tshards, _ = self._run_shards(run_id)

        def one(shard: int) -> list[dict[str, Any]]:
            e = x.Expr()
            cond = (f"{e.n('pk')} = {e.v(x.text(task_pk(run_id, shard)))} "
                    f"AND begins_with({e.n('sk')}, {e.v(x.text(TASK_PREFIX))})")
            filters = []
            if states is not None:
                filters.append(state_condition(e, states))
            if extra_filter is not None:
                filters.append(extra_filter(e))
            kwargs: dict[str, Any] = {"FilterExpression": " AND ".join(filters)} if filters else {}
            items: list[dict[str, Any]] = []
            while True:
                resp = self._ddb.query(TableName=self.table, KeyConditionExpression=cond,
                                       ConsistentRead=consistent, **e.kwargs(), **kwargs)
                items.extend(resp.get("Items", []))
                if "LastEvaluatedKey" not in resp:
                    return items
                kwargs["ExclusiveStartKey"] = resp["LastEvaluatedKey"]

        with ThreadPoolExecutor(max_workers=min(self.parallelism, tshards)) as pool:
            return [item for chunk in pool.map(one, range(tshards)) for item in chunk]

    def update_task(
        self, run_id: str, task_id: str, expect_states: Collection[TaskState],
        expect_attempt: int | None, changes: Mapping[str, Any],
    ) -> TaskRecord:
        check_mutable("task", changes)
        changes = coerce_task_changes(self._spilled(run_id, task_id, changes))
        e = x.Expr()
        cond = f"attribute_exists({e.n('sk')}) AND {state_condition(e, expect_states)}"
        if expect_attempt is not None:
            cond += f" AND {e.n('att')} = {e.v(x.num(expect_attempt))}"
        sets, removes = [], []
        for field, value in changes.items():
            attr = e.n(TASK_ATTR[field])
            if value is None or (field in ABSENT_WHEN_EMPTY and not value):
                removes.append(attr)
            else:
                sets.append(f"{attr} = {e.v(attr_value(field, value))}")
        update = (" SET " + ", ".join(sets) if sets else "") + (" REMOVE " + ", ".join(removes) if removes else "")
        if not update:
            update = f"SET {e.n('att')} = {e.n('att')}"
        key = self._task_key(run_id, task_id)
        try:
            resp = self._ddb.update_item(
                TableName=self.table, Key=key, UpdateExpression=update.strip(), ConditionExpression=cond,
                ReturnValues="ALL_OLD", ReturnValuesOnConditionCheckFailure="ALL_OLD", **e.kwargs(),
            )
        except Exception as exc:
            if error_code(exc) != "ConditionalCheckFailedException":
                raise
            raise self._conflict(run_id, task_id, exc, expect_states, expect_attempt) from None
        old = task_record(resp["Attributes"], legacy=False)
        # as a later read gives it: with what a result of the previous version carries, while it stays
        new = replace(old, **changes)
        if "result" not in changes:
            new = with_legacy(new, x.untext(resp["Attributes"].get("res")))
        if "state" in changes:
            self._count(run_id, old.state, new.state)
        return new

    def _spilled(self, run_id: str, task_id: str, changes: Mapping[str, Any]) -> Mapping[str, Any]:
        """The changes with a large result written to S3 and only its slim copy kept
        (dynamodb_results.py). If S3 refuses, the result stays inline (capped at 32 KB)."""
        raw = needs_spill(changes.get("result"))
        if raw is None:
            return changes
        key = spill_key(run_id, task_id, raw)
        try:
            self.clients.s3.put_object(Bucket=self.config.bucket, Key=self.config.blob_prefix + key,
                                       Body=raw, ContentType="application/json")
        except Exception as exc:
            log.warning("could not spill the result of task %s to S3 (%s); keeping it in the item",
                        task_id, error_code(exc) or type(exc).__name__, extra={"run_id": run_id})
            return changes
        return {**changes, "result": slim(changes["result"], key)}

    def update_tasks(
        self, run_id: str, expect_states: Collection[TaskState],
        updates: Sequence[tuple[str, int | None, Mapping[str, Any]]],
    ) -> list[TaskRecord | None]:
        """One conditional UpdateItem each: DynamoDB has no conditional write of many items
        that lets some fail (a transaction is all or nothing)."""
        return update_each(self, run_id, expect_states, updates)

    def _conflict(
        self, run_id: str, task_id: str, exc: Exception, expect_states: Collection[TaskState],
        expect_attempt: int | None,
    ) -> UpdraftError:
        item = getattr(exc, "response", {}).get("Item")
        if not item:
            return NotFoundError(f"no task {task_id!r} in run {run_id!r}")
        cur = task_record(item)
        return StateConflictError(
            f"task {task_id} is {cur.state} at attempt {cur.attempt}; expected "
            f"{sorted(TaskState(s).value for s in expect_states)} at attempt {expect_attempt}", cur,
        )

    # ---- dependency counting ---------------------------------------------------------------

    def complete_parent(self, run_id: str, parent_id: str, child_ids: Sequence[str]) -> list[TaskRecord]:
        child_ids = list(dict.fromkeys(child_ids))  # a child named twice is one edge, READY once
        if len(child_ids) > 8:
            with ThreadPoolExecutor(max_workers=self.parallelism) as pool:
                found = list(pool.map(lambda c: self._count_edge(run_id, parent_id, c), child_ids))
        else:
            found = [self._count_edge(run_id, parent_id, c) for c in child_ids]
        return [rec for rec in found if rec is not None and rec.state is TaskState.READY]

    def complete_parents(self, run_id: str, completions: Sequence[tuple[str, Sequence[str]]]) -> list[TaskRecord]:
        return complete_each(self, run_id, completions)  # one conditional write per edge either way

    def _count_edge(self, run_id: str, parent_id: str, child: str) -> TaskRecord | None:
        if (run_id, child) in self._edge_mode:
            return self._count_edge_item(run_id, parent_id, child)
        tag = parent_tag(parent_id)
        e = x.Expr()
        update = f"ADD {e.n('dp')} {e.v({'SS': [tag]})} SET {e.n('pend')} = {e.n('pend')} - {e.v(x.num(1))}"
        cond = (f"attribute_exists({e.n('sk')}) AND attribute_not_exists({e.n('fan')}) "
                f"AND NOT contains({e.n('dp')}, {e.v(x.text(tag))})")
        try:
            resp = self._ddb.update_item(
                TableName=self.table, Key=self._task_key(run_id, child), UpdateExpression=update,
                ConditionExpression=cond, ReturnValues="ALL_NEW",
                ReturnValuesOnConditionCheckFailure="ALL_OLD", **e.kwargs(),
            )
        except Exception as exc:
            if error_code(exc) != "ConditionalCheckFailedException":
                raise
            old = getattr(exc, "response", {}).get("Item")
            if not old:
                return None  # no such child
            if "fan" in old:
                self._edge_mode.add((run_id, child))
                return self._count_edge_item(run_id, parent_id, child)
            return task_record(old)  # counted before: a redelivered completion
        new = resp["Attributes"]
        rec = task_record(new)
        if new["st"]["S"] == TaskState.WAITING.value and rec.pending == 0:
            self._count(run_id, TaskState.WAITING, TaskState.READY)  # this decrement reached zero
        return rec

    def _count_edge_item(self, run_id: str, parent_id: str, child: str) -> TaskRecord | None:
        """High fan-in: an edge item marks (parent, child) counted; pend is compare-and-set in
        the same transaction, so exactly one caller sees it reach zero."""
        key = self._task_key(run_id, child)
        for _ in range(CAS_TRIES):
            item = self._get_task_item(run_id, child)
            if item is None:
                return None
            pend = int(x.unnum(item["pend"]) or 0)
            e = x.Expr()
            update = {
                "TableName": self.table, "Key": key,
                "UpdateExpression": f"SET {e.n('pend')} = {e.v(x.num(pend - 1))}",
                "ConditionExpression": f"attribute_exists({e.n('sk')}) AND {e.n('pend')} = {e.v(x.num(pend))}",
                **e.kwargs(),
            }
            marker = {"pk": key["pk"], "sk": x.text(edge_sk(child, parent_id))}
            try:
                self._ddb.transact_write_items(TransactItems=[
                    {"Put": {"TableName": self.table, "Item": marker,
                             "ConditionExpression": "attribute_not_exists(sk)"}},
                    {"Update": update},
                ])
            except Exception as exc:
                code = error_code(exc)
                if code not in ("TransactionCanceledException", "TransactionConflictException"):
                    raise
                reasons = [r.get("Code") for r in getattr(exc, "response", {}).get("CancellationReasons", [])]
                if reasons and reasons[0] == "ConditionalCheckFailed":
                    return task_record(item)  # counted before
                time.sleep(random.uniform(0.005, 0.05))  # pend moved under us: read and retry
                continue
            rec = task_record({**item, "pend": x.num(pend - 1)})
            if item["st"]["S"] == TaskState.WAITING.value and pend - 1 == 0:
                self._count(run_id, TaskState.WAITING, TaskState.READY)
            return rec
        raise StoreThrottledError(f"could not count parent {parent_id!r} of task {child!r} after "
                                  f"{CAS_TRIES} tries (contention); the event will be redelivered")

    def reset_task(
        self, run_id: str, task_id: str, state: TaskState, attempt: int, done_parents: Sequence[str],
        pending: int, max_attempts: int,
    ) -> TaskRecord:
        old_item = self._get_task_item(run_id, task_id)
        if old_item is None:
            raise NotFoundError(f"no task {task_id!r} in run {run_id!r}")
        key = self._task_key(run_id, task_id)
        edge_mode = "fan" in old_item
        if edge_mode:
            self._reset_edges(run_id, task_id, key["pk"]["S"], done_parents)
        e = x.Expr()
        sets = [f"{e.n('st')} = {e.v(x.text(TaskState(state).value))}", f"{e.n('att')} = {e.v(x.num(attempt))}",
                f"{e.n('pend')} = {e.v(x.num(pending))}", f"{e.n('maxa')} = {e.v(x.num(max_attempts))}"]
        removes = [e.n(a) for a in ("lease", "nb", "sa", "fa", "ec", "rsn", "res", "lw", "rsc", "tries", "fp")]
        if done_parents and not edge_mode:
            sets.append(f"{e.n('dp')} = {e.v({'SS': sorted({parent_tag(p) for p in done_parents})})}")
        else:
            removes.append(e.n("dp"))
        resp = self._ddb.update_item(
            TableName=self.table, Key=key, ReturnValues="ALL_NEW",
            UpdateExpression=f"SET {', '.join(sets)} REMOVE {', '.join(removes)}", **e.kwargs(),
        )
        new = task_record(resp["Attributes"])
        self._count(run_id, logical_state(old_item), new.state)
        return new

    def _reset_edges(self, run_id: str, child: str, pk: str, done_parents: Sequence[str]) -> None:
        e = x.Expr()
        cond = f"{e.n('pk')} = {e.v(x.text(pk))} AND begins_with({e.n('sk')}, {e.v(x.text(edge_sk(child, '')))})"
        deletes: list[dict[str, Any]] = []
        kwargs: dict[str, Any] = {}
        while True:
            resp = self._ddb.query(TableName=self.table, KeyConditionExpression=cond, ConsistentRead=True,
                                   ProjectionExpression="pk, sk", **e.kwargs(), **kwargs)
            deletes.extend({"DeleteRequest": {"Key": {"pk": i["pk"], "sk": i["sk"]}}} for i in resp.get("Items", []))
            if "LastEvaluatedKey" not in resp:
                break
            kwargs["ExclusiveStartKey"] = resp["LastEvaluatedKey"]
        self._batch_write(deletes)
        self._batch_write([{"PutRequest": {"Item": {"pk": x.text(pk), "sk": x.text(edge_sk(child, p))}}}
                           for p in dict.fromkeys(done_parents)])

    # ---- counts, leases, repair ----------------------------------------------------------------

    def counts(self, run_id: str) -> dict[str, int]:
        self.flush()
        _, cshards = self._run_shards(run_id)
        items = self._batch_get(run_id, [run_key(run_id), *(counter_key(run_id, j) for j in range(cshards))])
        totals: dict[str, int] = {}
        for item in items:
            if item["sk"]["S"] == RUN_SK:
                if "fc" in item:  # exact counts stored by the sweeper when it finished a recounted run
                    return {k: int(v) for k, v in json.loads(item["fc"]["S"]).items() if v > 0}
                continue
            for state in TaskState:
                attr = item.get(state.value)
                if attr is not None:
                    totals[state.value] = totals.get(state.value, 0) + int(x.unnum(attr) or 0)
        return {s: n for s, n in totals.items() if n > 0}

    def _batch_get(self, run_id: str, keys: list[dict[str, Any]]) -> list[dict[str, Any]]:
        items: list[dict[str, Any]] = []
        for start in range(0, len(keys), DYNAMODB_MAX_BATCH_GET):
            request: dict[str, Any] = {self.table: {"Keys": keys[start:start + DYNAMODB_MAX_BATCH_GET],
                                                    "ConsistentRead": True}}
            for attempt in range(BATCH_WRITE_TRIES):
                resp = self._ddb.batch_get_item(RequestItems=request)
                items.extend(resp.get("Responses", {}).get(self.table, []))
                request = resp.get("UnprocessedKeys") or {}
                if not request:
                    break
                time.sleep(min(1.0, 0.05 * 2 ** attempt))
            else:
                raise StoreThrottledError(f"could not read the counters of run {run_id} (throttled)")
        return items

    def counters_last_changed(self, run_id: str) -> float:
        """When a coordinator last wrote this run's counters (the sweeper's quietness test)."""
        _, cshards = self._run_shards(run_id)
        items = self._batch_get(run_id, [counter_key(run_id, j) for j in range(cshards)])
        return max((float(x.unnum(i.get("at")) or 0.0) for i in items), default=0.0)

    def _rebase_counters(self, run_id: str) -> None:
        """Set the counter shards to the exact counts of the task items. Only safe while no
        coordinator works on the run: on resume, before the run is RUNNING again."""
        exact = self.recount(run_id)
        with self._lock:
            self._deltas.pop(run_id, None)  # the recount includes them
        _, cshards = self._run_shards(run_id)
        now = x.num(time.time())
        puts = [{"PutRequest": {"Item": {**counter_key(run_id, j), "v": x.num(0), "at": now,
                                         **({s: x.num(n) for s, n in exact.items()} if j == 0 else {})}}}
                for j in range(cshards)]
        self._batch_write(puts)

    def recount(self, run_id: str) -> dict[str, int]:
        """Exact counts from the task items themselves (a full read of the run)."""
        totals: dict[str, int] = {}
        for item in self._task_items(run_id, None):
            state = logical_state(item).value
            totals[state] = totals.get(state, 0) + 1
        return totals

    def finish_recounted(self, run_id: str, final: RunState, counts: Mapping[str, int], now: float) -> RunRecord:
        """Finish a RUNNING run the sweeper found fully terminal by `recount`, storing those
        exact counts (its counter shards may lag after a coordinator crash)."""
        e = x.Expr()
        resp = None
        try:
            resp = self._ddb.update_item(
                TableName=self.table, Key=run_key(run_id),
                UpdateExpression=(f"SET {e.n('rs')} = {e.v(x.text(final.value))}, {e.n('fa')} = {e.v(x.num(now))}, "
                                  f"{e.n('fc')} = {e.v(x.jsontext(dict(counts)))}"),
                ConditionExpression=f"{e.n('rs')} = {e.v(x.text(RunState.RUNNING.value))}",
                ReturnValues="ALL_NEW", ReturnValuesOnConditionCheckFailure="ALL_OLD", **e.kwargs(),
            )
        except Exception as exc:
            if error_code(exc) != "ConditionalCheckFailedException":
                raise
            old = getattr(exc, "response", {}).get("Item")
            raise StateConflictError(f"run {run_id} is no longer RUNNING", run_record(old) if old else None) from None
        return run_record(resp["Attributes"])

    def expired_leases(self, now: float, limit: int = 500) -> list[TaskRecord]:
        check_limit(limit)
        out: list[TaskRecord] = []
        for run in self.list_runs(limit=10_000, state=RunState.RUNNING):
            items = self._task_items(run.run_id, IN_FLIGHT, consistent=False,
                                     extra_filter=lambda e: f"{e.n('lease')} < {e.v(x.num(now))}")
            out.extend(task_record(i) for i in items)
            if len(out) >= limit:
                break
        return out[:limit]

    # ---- batch writes -------------------------------------------------------------------------

    def _batch_write(self, requests: list[dict[str, Any]]) -> None:
        chunks = [requests[i:i + DYNAMODB_MAX_BATCH_WRITE] for i in range(0, len(requests), DYNAMODB_MAX_BATCH_WRITE)]
        if len(chunks) <= 1:
            for chunk in chunks:
                self._write_chunk(chunk)
            return
        with ThreadPoolExecutor(max_workers=self.parallelism) as pool:
            list(pool.map(self._write_chunk, chunks))

    def _write_chunk(self, chunk: list[dict[str, Any]]) -> None:
        request: dict[str, Any] = {self.table: chunk}
        for attempt in range(BATCH_WRITE_TRIES):
            resp = self._ddb.batch_write_item(RequestItems=request)
            request = resp.get("UnprocessedItems") or {}
            if not request:
                return
            time.sleep(min(2.0, 0.05 * 2 ** attempt) * random.uniform(0.5, 1.0))
        left = sum(len(v) for v in request.values())
        raise StoreThrottledError(
            f"DynamoDB table {self.table} left {left} item(s) unprocessed after {BATCH_WRITE_TRIES} tries "
            "(throttled); retry the submission, or raise the table's throughput"
        )


def _run_conflict(cur: RunRecord, expect: Collection[RunState]) -> StateConflictError:
    return StateConflictError(
        f"run {cur.run_id} is {cur.state}, expected one of {sorted(RunState(s).value for s in expect)}", cur)
