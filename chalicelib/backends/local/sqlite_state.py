"""SQLite state store (WAL). One transaction per coordinator step: crash-safe as a unit.

Tables: runs; tasks (PK run_id, task_id); done_edges (which parents a child has counted, so a
redelivered completion never decrements twice); counts (tasks per state per run, kept in the
same transaction as every state change, so `counts` is O(states), not O(tasks)).
"""

from __future__ import annotations

import json
import sqlite3
import threading
from collections.abc import Collection, Iterator, Mapping, Sequence
from typing import Any

from chalicelib.attempt import decode_result, encode_result
from chalicelib.engine.ports import first_named, update_each
from chalicelib.engine.records import (
    RunRecord,
    TaskPage,
    TaskRecord,
    check_limit,
    check_mutable,
    check_new_tasks,
    decode_resources,
    decode_tries,
    encode_resources,
    encode_tries,
    with_legacy,
)
from chalicelib.engine.states import IN_FLIGHT, RunState, TaskState
from chalicelib.errors import NotFoundError, StateConflictError, WorkdirError

_SCHEMA = """
CREATE TABLE IF NOT EXISTS runs (
  run_id TEXT PRIMARY KEY, name TEXT NOT NULL, state TEXT NOT NULL, created_at REAL NOT NULL,
  finished_at REAL, task_count INTEGER NOT NULL, spec_key TEXT NOT NULL, options TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS runs_by_time ON runs(created_at);
CREATE TABLE IF NOT EXISTS tasks (
  run_id TEXT NOT NULL, task_id TEXT NOT NULL, state TEXT NOT NULL, attempt INTEGER NOT NULL,
  placement TEXT NOT NULL, pending INTEGER NOT NULL, max_attempts INTEGER NOT NULL,
  lease_expires REAL, not_before REAL, started_at REAL, finished_at REAL, exit_code INTEGER,
  reason TEXT, result TEXT, seq INTEGER NOT NULL, prev_state TEXT,
  lost_workers INTEGER, resources TEXT, tries TEXT, failed_parent TEXT,
  PRIMARY KEY (run_id, task_id)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS tasks_by_state ON tasks(run_id, state);
CREATE INDEX IF NOT EXISTS tasks_by_seq ON tasks(run_id, seq);
CREATE INDEX IF NOT EXISTS tasks_by_lease ON tasks(lease_expires) WHERE lease_expires IS NOT NULL;
CREATE TABLE IF NOT EXISTS done_edges (
  run_id TEXT NOT NULL, child TEXT NOT NULL, parent TEXT NOT NULL,
  PRIMARY KEY (run_id, child, parent)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS counts (
  run_id TEXT NOT NULL, state TEXT NOT NULL, n INTEGER NOT NULL, PRIMARY KEY (run_id, state)
) WITHOUT ROWID;
"""

ITER_PAGE = 1000  # task records built at a time by iter_tasks
_EDGES_PER_STATEMENT = 300  # 3 parameters each: well under SQLite's 32,766 per statement
_UPDATES_PER_STATEMENT = 256  # up to ~16 parameters each

_TASK_COLS = (
    "run_id, task_id, state, attempt, placement, pending, max_attempts, lease_expires, not_before, "
    "started_at, finished_at, exit_code, reason, result, lost_workers, resources, tries, failed_parent"
)
# Columns a database of an earlier version lacks: added when it is opened (NULL: empty).
_ADDED_COLUMNS = {"lost_workers": "INTEGER", "resources": "TEXT", "tries": "TEXT", "failed_parent": "TEXT"}


def _task(row: Sequence[Any], written: Mapping[str, Any] | None = None) -> TaskRecord:
    """A record from a row; `written` are the changes the caller just wrote (their structured
    values are taken as given rather than parsed back from JSON)."""
    written = written or {}
    raw = row[13]
    result = written["result"] if "result" in written else (decode_result(raw) if raw else None)
    record = TaskRecord(
        run_id=row[0], task_id=row[1], state=TaskState(row[2]), attempt=row[3], placement=row[4],
        pending=row[5], max_attempts=row[6], lease_expires=row[7], not_before=row[8],
        started_at=row[9], finished_at=row[10], exit_code=row[11], reason=row[12],
        result=result, lost_workers=row[14] or 0,
        resources=written["resources"] if "resources" in written else (decode_resources(row[15]) if row[15] else {}),
        tries=written["tries"] if "tries" in written else (decode_tries(row[16]) if row[16] else ()),
        failed_parent=row[17],
    )
    return record if "result" in written else with_legacy(record, raw)  # a result of the previous version


def _run(row: Sequence[Any]) -> RunRecord:
    return RunRecord(
        run_id=row[0], name=row[1], state=RunState(row[2]), created_at=row[3], finished_at=row[4],
        task_count=row[5], spec_key=row[6], options=json.loads(row[7]),
    )


def _db_value(key: str, value: Any) -> Any:
    if key == "result":
        return encode_result(value).decode() if value is not None else None
    if key == "tries":
        return encode_tries(value) if value else None
    if key == "resources":
        return encode_resources(value) if value else None
    if key == "lost_workers":
        return value or None
    if key == "options":
        return json.dumps(value)
    if isinstance(value, TaskState | RunState):
        return value.value
    return value


class _Transaction:
    """`with store.batch():` as a plain object (no generator per use: the coordinator enters
    one per state change)."""

    __slots__ = ("store",)

    def __init__(self, store: SqliteStateStore) -> None:
        self.store = store

    def __enter__(self) -> None:
        self.store._begin()

    def __exit__(self, exc_type: object, exc: object, tb: object) -> None:
        self.store._end(exc_type is not None)


class SqliteStateStore:
    """StateStore on one SQLite file. Safe across processes (SQLite locking) and threads."""

    def __init__(self, path: str) -> None:
        self.path = path
        self._lock = threading.RLock()
        try:
            self._db = sqlite3.connect(path, isolation_level=None, check_same_thread=False, timeout=30.0)
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=NORMAL")
            # Checkpoint the WAL every ~40 MB rather than SQLite's 4 MB: a checkpoint (and its
            # fsyncs) lands on whichever commit crosses the mark, a few milliseconds of a run's
            # loop each; the hot pages (counts, indexes) are copied once per checkpoint, not ten
            # times. The file shrinks back when the last connection closes.
            self._db.execute("PRAGMA wal_autocheckpoint=10000")
            self._db.execute("PRAGMA foreign_keys=OFF")
            self._db.executescript(_SCHEMA)
            self._add_columns()
        except sqlite3.DatabaseError as exc:  # not a database, damaged, a folder, unwritable
            raise WorkdirError(
                f"the state database {path} cannot be used ({exc}): it is damaged or not Updraft's. "
                f"Move it aside to start afresh (the runs' files stay in the work dir), or pass "
                f"another --workdir") from None
        self._depth = 0
        self._transaction = _Transaction(self)
        self._deltas: dict[tuple[str, str], int] = {}
        self._update_sql: dict[tuple[tuple[str, ...], int, bool], str] = {}
        self._group_sql: dict[tuple[tuple[str, ...], bool, int, int], str] = {}

    def close(self) -> None:
        self._db.close()

    def _add_columns(self) -> None:
        """Bring a database of an earlier version up to this schema (new nullable columns)."""
        have = {row[1] for row in self._db.execute("PRAGMA table_info(tasks)").fetchall()}
        for name, kind in _ADDED_COLUMNS.items():
            if name not in have:
                self._db.execute(f"ALTER TABLE tasks ADD COLUMN {name} {kind}")

    # ---- transactions -------------------------------------------------------------------

    def batch(self) -> _Transaction:
        """One transaction around everything inside (nested: joins the outer one)."""
        return self._transaction

    _tx = batch

    def _begin(self) -> None:
        self._lock.acquire()
        if self._depth:
            self._depth += 1
            return
        try:
            self._db.execute("BEGIN IMMEDIATE")
        except BaseException:
            self._lock.release()
            raise
        self._depth = 1

    def _end(self, failed: bool) -> None:
        try:
            self._depth -= 1
            if self._depth:
                return
            if failed:
                self._deltas.clear()
                self._db.execute("ROLLBACK")
                return
            try:
                self._flush_counts()
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
            self._db.execute("COMMIT")
        finally:
            self._lock.release()

    # ---- runs ---------------------------------------------------------------------------

    def create_run(self, run: RunRecord, tasks: Sequence[TaskRecord]) -> None:
        check_new_tasks(run.run_id, tasks)
        with self._tx():
            if self._has_run(run.run_id):
                raise StateConflictError(f"run {run.run_id} already exists", self.get_run(run.run_id))
            self._db.execute(
                "INSERT INTO runs VALUES (?,?,?,?,?,?,?,?)",
                (run.run_id, run.name, run.state.value, run.created_at, run.finished_at,
                 run.task_count, run.spec_key, json.dumps(run.options)),
            )
            self._db.executemany(
                f"INSERT INTO tasks ({_TASK_COLS}, seq) VALUES ({','.join('?' * 19)})",
                (
                    (t.run_id, t.task_id, t.state.value, t.attempt, t.placement, t.pending,
                     t.max_attempts, t.lease_expires, t.not_before, t.started_at, t.finished_at,
                     t.exit_code, t.reason, _db_value("result", t.result),
                     _db_value("lost_workers", t.lost_workers), _db_value("resources", t.resources),
                     _db_value("tries", t.tries), t.failed_parent, i)
                    for i, t in enumerate(tasks)
                ),
            )
            per_state: dict[str, int] = {}
            for t in tasks:
                per_state[t.state.value] = per_state.get(t.state.value, 0) + 1
            for state, n in per_state.items():
                self._deltas[(run.run_id, state)] = self._deltas.get((run.run_id, state), 0) + n

    def get_run(self, run_id: str) -> RunRecord:
        row = self._db.execute("SELECT * FROM runs WHERE run_id=?", (run_id,)).fetchone()
        if row is None:
            raise self._no_run(run_id)
        return _run(row)

    def _no_run(self, run_id: str) -> NotFoundError:
        return NotFoundError(f"no run {run_id!r} in {self.path}; `updraft runs` lists them")

    def _has_run(self, run_id: str) -> bool:
        return self._db.execute("SELECT 1 FROM runs WHERE run_id=?", (run_id,)).fetchone() is not None

    def _check_run(self, run_id: str) -> None:
        """Raise NotFoundError for an unknown run (what an empty answer could also mean)."""
        if not self._has_run(run_id):
            raise self._no_run(run_id)

    def list_runs(self, limit: int = 50, state: RunState | None = None) -> list[RunRecord]:
        check_limit(limit)
        if state is None:
            rows = self._db.execute("SELECT * FROM runs ORDER BY created_at DESC, run_id DESC LIMIT ?", (limit,))
        else:
            rows = self._db.execute(
                "SELECT * FROM runs WHERE state=? ORDER BY created_at DESC, run_id DESC LIMIT ?", (state.value, limit)
            )
        return [_run(r) for r in rows.fetchall()]

    def update_run(self, run_id: str, expect: Collection[RunState], changes: Mapping[str, Any]) -> RunRecord:
        check_mutable("run", changes)
        with self._tx():
            cur = self.get_run(run_id)
            if cur.state not in expect:
                raise StateConflictError(f"run {run_id} is {cur.state}, expected one of {sorted(expect)}", cur)
            if not changes:
                return cur
            sets = ", ".join(f"{k}=?" for k in changes)
            self._db.execute(
                f"UPDATE runs SET {sets} WHERE run_id=?",
                (*(_db_value(k, v) for k, v in changes.items()), run_id),
            )
            return self.get_run(run_id)

    def delete_run(self, run_id: str, expect: Collection[RunState]) -> RunRecord:
        with self._tx():  # one transaction: the run and everything of it go together
            cur = self.get_run(run_id)
            if cur.state not in expect:
                raise StateConflictError(f"run {run_id} is {cur.state}, expected one of {sorted(expect)}", cur)
            for table in ("tasks", "done_edges", "counts", "runs"):
                self._db.execute(f"DELETE FROM {table} WHERE run_id=?", (run_id,))  # nosec B608: fixed names
            for key in [k for k in self._deltas if k[0] == run_id]:
                del self._deltas[key]
            return cur

    # ---- tasks --------------------------------------------------------------------------

    def get_task(self, run_id: str, task_id: str) -> TaskRecord:
        row = self._db.execute(
            f"SELECT {_TASK_COLS} FROM tasks WHERE run_id=? AND task_id=?", (run_id, task_id)
        ).fetchone()
        if row is None:
            raise NotFoundError(f"no task {task_id!r} in run {run_id!r}")
        return _task(row)

    def list_tasks(
        self, run_id: str, states: Collection[TaskState] | None = None, limit: int | None = None,
    ) -> list[TaskRecord]:
        check_limit(limit)
        tasks = [_task(r) for r in self._select_tasks(run_id, states, limit).fetchall()]
        if not tasks:
            self._check_run(run_id)
        return tasks

    def page_tasks(
        self, run_id: str, states: Collection[TaskState] | None = None, limit: int = 256,
        after: str | None = None,
    ) -> TaskPage:
        """Submission order: the page after task `after` is the rows of a higher seq."""
        if limit < 1:
            raise ValueError(f"limit must be 1 or more, not {limit}")
        self._check_run(run_id)
        seq = -1
        if after is not None:
            row = self._db.execute("SELECT seq FROM tasks WHERE run_id=? AND task_id=?", (run_id, after)).fetchone()
            if row is None:
                raise ValueError(f"no task {after!r} in run {run_id!r} to page on from")
            seq = row[0]
        names = () if states is None else tuple(TaskState(s).value for s in states)
        which = "" if states is None else f" AND state IN ({','.join('?' * len(names))})"
        rows = self._db.execute(
            f"SELECT {_TASK_COLS} FROM tasks WHERE run_id=? AND seq>?{which} ORDER BY seq LIMIT ?",
            (run_id, seq, *names, limit + 1)).fetchall()
        tasks = [_task(r) for r in rows[:limit]]
        return TaskPage(tasks, tasks[-1].task_id if len(rows) > limit else None)

    def iter_tasks(self, run_id: str, states: Collection[TaskState] | None = None) -> Iterator[TaskRecord]:
        self._check_run(run_id)  # now, not at the first record
        return self._iter_rows(self._select_tasks(run_id, states))

    def _iter_rows(self, cur: sqlite3.Cursor) -> Iterator[TaskRecord]:
        # One statement read ITER_PAGE rows at a time: SQLite keeps the sorted rows (compact, or
        # spilled to a temporary file), Python holds one page of records.
        try:
            while rows := cur.fetchmany(ITER_PAGE):
                yield from map(_task, rows)
        finally:
            cur.close()

    def _select_tasks(
        self, run_id: str, states: Collection[TaskState] | None, limit: int | None = None,
    ) -> sqlite3.Cursor:
        """The run's task rows in submission order, only those in `states` if given."""
        names = () if states is None else tuple(s.value for s in states)
        which = "" if states is None else f" AND state IN ({','.join('?' * len(names))})"
        cap = -1 if limit is None else limit  # SQLite: a negative LIMIT is no limit
        return self._db.execute(f"SELECT {_TASK_COLS} FROM tasks WHERE run_id=?{which} ORDER BY seq LIMIT ?",
                                (run_id, *names, cap))

    def _move_count(self, run_id: str, old: str, new: str) -> None:
        """Record a state change; counts are written once per transaction, not per task."""
        if old == new:
            return
        d = self._deltas
        d[(run_id, old)] = d.get((run_id, old), 0) - 1
        d[(run_id, new)] = d.get((run_id, new), 0) + 1

    def _flush_counts(self) -> None:
        if not self._deltas:
            return
        rows = [(run_id, state, n) for (run_id, state), n in self._deltas.items() if n]
        self._deltas.clear()
        self._db.executemany(
            "INSERT INTO counts VALUES (?,?,?) ON CONFLICT(run_id, state) DO UPDATE SET n=n+excluded.n", rows
        )

    def update_task(
        self, run_id: str, task_id: str, expect_states: Collection[TaskState],
        expect_attempt: int | None, changes: Mapping[str, Any],
    ) -> TaskRecord:
        check_mutable("task", changes)
        shape = (tuple(changes), len(expect_states), expect_attempt is not None)
        sql = self._update_sql.get(shape)
        if sql is None:
            marks = ",".join("?" * len(expect_states))
            sets = "".join(f", {k}=?" for k in changes)  # none: a conditional no-op
            where = f"run_id=? AND task_id=? AND state IN ({marks})" + (" AND attempt=?" if shape[2] else "")
            sql = self._update_sql[shape] = (
                f"UPDATE tasks SET prev_state=state{sets} WHERE {where} RETURNING {_TASK_COLS}, prev_state")
        params: list[Any] = [_db_value(k, v) for k, v in changes.items()]
        params += [run_id, task_id, *(s.value for s in expect_states)]
        if expect_attempt is not None:
            params.append(expect_attempt)
        with self._tx():
            row = self._db.execute(sql, params).fetchone()
            if row is None:
                cur = self.get_task(run_id, task_id)  # raises NotFoundError for an unknown task
                raise StateConflictError(
                    f"task {task_id} is {cur.state} at attempt {cur.attempt}; expected "
                    f"{sorted(s.value for s in expect_states)} at attempt {expect_attempt}",
                    cur,
                )
            return self._updated(run_id, row, changes)

    def update_tasks(
        self, run_id: str, expect_states: Collection[TaskState],
        updates: Sequence[tuple[str, int | None, Mapping[str, Any]]],
    ) -> list[TaskRecord | None]:
        """One UPDATE ... FROM (VALUES ...) per group of updates that change the same fields
        (and name each task once: a task named again waits for the next statement, so it
        sees the first one's effect, as one update after another would)."""
        if len(updates) == 1:  # one task: update_task's statement, prepared once per shape
            return update_each(self, run_id, expect_states, updates)
        for _, _, changes in updates:
            check_mutable("task", changes)
        out: list[TaskRecord | None] = [None] * len(updates)
        todo = list(range(len(updates)))
        states = [s.value for s in expect_states]
        with self._tx():
            while todo:
                groups: dict[tuple[tuple[str, ...], bool], list[int]] = {}
                named: set[str] = set()
                later: list[int] = []
                for i in todo:
                    task_id, attempt, changes = updates[i]
                    if task_id in named:
                        later.append(i)
                        continue
                    named.add(task_id)
                    groups.setdefault((tuple(changes), attempt is not None), []).append(i)
                for (keys, by_attempt), members in groups.items():
                    for start in range(0, len(members), _UPDATES_PER_STATEMENT):
                        self._update_group(run_id, states, keys, by_attempt,
                                           members[start:start + _UPDATES_PER_STATEMENT], updates, out)
                todo = later
        return out

    def _update_group(
        self, run_id: str, states: list[str], keys: tuple[str, ...], by_attempt: bool, members: list[int],
        updates: Sequence[tuple[str, int | None, Mapping[str, Any]]], out: list[TaskRecord | None],
    ) -> None:
        shape = (keys, by_attempt, len(members), len(states))
        sql = self._group_sql.get(shape)
        if sql is None:
            width = 2 + len(keys)  # task_id, attempt, then the changed fields (VALUES' column1...)
            sets = "".join(f", {k}=v.column{3 + n}" for n, k in enumerate(keys))  # none: a conditional no-op
            attempt_match = " AND tasks.attempt=v.column2" if by_attempt else ""
            row_marks = "(" + ",".join("?" * width) + ")"
            sql = self._group_sql[shape] = (
                f"UPDATE tasks SET prev_state=state{sets} FROM (VALUES {','.join([row_marks] * len(members))}) AS v "
                f"WHERE tasks.run_id=? AND tasks.task_id=v.column1{attempt_match} "
                f"AND tasks.state IN ({','.join('?' * len(states))}) RETURNING {_TASK_COLS}, prev_state")
        params: list[Any] = []
        for i in members:
            task_id, attempt, changes = updates[i]
            params += (task_id, attempt, *(_db_value(k, v) for k, v in changes.items()))
        params += (run_id, *states)
        where = {updates[i][0]: i for i in members}
        for row in self._db.execute(sql, params).fetchall():
            i = where[row[1]]
            out[i] = self._updated(run_id, row, updates[i][2])

    def _updated(self, run_id: str, row: Sequence[Any], changes: Mapping[str, Any]) -> TaskRecord:
        """The record an UPDATE ... RETURNING gave back (its prev_state last), counted."""
        self._move_count(run_id, row[-1], row[2])
        return _task(row, changes)

    def complete_parent(self, run_id: str, parent_id: str, child_ids: Sequence[str]) -> list[TaskRecord]:
        return self._count_edges(run_id, [(parent_id, child_ids)])

    def complete_parents(self, run_id: str, completions: Sequence[tuple[str, Sequence[str]]]) -> list[TaskRecord]:
        return self._count_edges(run_id, completions)

    def _count_edges(self, run_id: str, completions: Sequence[tuple[str, Sequence[str]]]) -> list[TaskRecord]:
        """Count every edge (parent -> child) of the completions in a few statements, whatever
        their number (a 20 x 100 DAG of 3 parents each had two statements per completed task,
        a fifth of its loop's time): the edges inserted now (a redelivered completion finds
        them already there), then one decrement per child by its number of newly counted
        edges, each child that reaches zero going WAITING -> READY (SET expressions see the
        row as it was)."""
        edges = [(child, parent) for parent, children in completions for child in children]
        if not edges:
            return []
        counted: dict[str, int] = {}  # child -> edges counted now
        again: set[str] = set()  # children named by an edge counted before
        rows: list[Any] = []
        touched = 0  # child rows decremented
        with self._tx():
            for i in range(0, len(edges), _EDGES_PER_STATEMENT):
                chunk = edges[i:i + _EDGES_PER_STATEMENT]
                new = set(self._db.execute(
                    "INSERT OR IGNORE INTO done_edges VALUES " + ",".join(["(?,?,?)"] * len(chunk))
                    + " RETURNING child, parent",
                    [v for child, parent in chunk for v in (run_id, child, parent)],
                ).fetchall())
                for edge in chunk:
                    if edge in new:
                        counted[edge[0]] = counted.get(edge[0], 0) + 1
                        new.discard(edge)  # the same edge named twice is counted once
                    else:
                        again.add(edge[0])
            decrements = list(counted.items())
            for i in range(0, len(decrements), _EDGES_PER_STATEMENT):
                pairs = decrements[i:i + _EDGES_PER_STATEMENT]
                moved = self._db.execute(
                    "UPDATE tasks SET pending=pending-v.column2, prev_state=state, "
                    "state=CASE WHEN pending<=v.column2 AND state=? THEN ? ELSE state END "
                    f"FROM (VALUES {','.join(['(?,?)'] * len(pairs))}) AS v "
                    f"WHERE tasks.run_id=? AND tasks.task_id=v.column1 RETURNING {_TASK_COLS}, prev_state",
                    (TaskState.WAITING.value, TaskState.READY.value, *(v for pair in pairs for v in pair), run_id),
                ).fetchall()
                touched += len(moved)
                for row in moved:
                    if row[2] == TaskState.READY.value:
                        self._move_count(run_id, row[-1], row[2])
                        rows.append(row)
            if counted and not touched:
                self._check_run(run_id)  # an unknown run: NotFoundError, and its edges roll back
            # counted by an earlier delivery: report the ones still READY (to dispatch)
            before = sorted(again - {row[1] for row in rows})
            for i in range(0, len(before), _EDGES_PER_STATEMENT):
                names = before[i:i + _EDGES_PER_STATEMENT]
                rows += self._db.execute(
                    f"SELECT {_TASK_COLS} FROM tasks WHERE run_id=? AND task_id IN ({','.join('?' * len(names))}) "
                    "AND state=?",
                    (run_id, *names, TaskState.READY.value),
                ).fetchall()
        order = first_named(completions)
        return [_task(row) for row in sorted(rows, key=lambda row: order[row[1]])]

    def reset_task(
        self, run_id: str, task_id: str, state: TaskState, attempt: int, done_parents: Sequence[str],
        pending: int, max_attempts: int,
    ) -> TaskRecord:
        with self._tx():
            old = self.get_task(run_id, task_id)
            self._db.execute("DELETE FROM done_edges WHERE run_id=? AND child=?", (run_id, task_id))
            self._db.executemany(  # a parent named twice is one done edge
                "INSERT INTO done_edges VALUES (?,?,?)", ((run_id, task_id, p) for p in dict.fromkeys(done_parents))
            )
            self._db.execute(
                "UPDATE tasks SET state=?, attempt=?, pending=?, max_attempts=?, lease_expires=NULL, "
                "not_before=NULL, started_at=NULL, finished_at=NULL, exit_code=NULL, reason=NULL, "
                "result=NULL, lost_workers=NULL, resources=NULL, tries=NULL, failed_parent=NULL "
                "WHERE run_id=? AND task_id=?",
                (state.value, attempt, pending, max_attempts, run_id, task_id),
            )
            self._move_count(run_id, old.state.value, state.value)
            return self.get_task(run_id, task_id)

    def counts(self, run_id: str) -> dict[str, int]:
        rows = dict(self._db.execute("SELECT state, n FROM counts WHERE run_id=?", (run_id,)).fetchall())
        for (rid, state), n in self._deltas.items():
            if rid == run_id:
                rows[state] = rows.get(state, 0) + n
        if not rows:
            self._check_run(run_id)
        return {state: n for state, n in rows.items() if n > 0}

    def expired_leases(self, now: float, limit: int = 500) -> list[TaskRecord]:
        check_limit(limit)
        marks = ",".join("?" * len(IN_FLIGHT))
        rows = self._db.execute(
            f"SELECT {_TASK_COLS} FROM tasks WHERE lease_expires IS NOT NULL AND lease_expires < ? "
            f"AND state IN ({marks}) AND run_id IN (SELECT run_id FROM runs WHERE state=?) LIMIT ?",
            (now, *(s.value for s in IN_FLIGHT), RunState.RUNNING.value, limit),
        )
        return [_task(r) for r in rows.fetchall()]
