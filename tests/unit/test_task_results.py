"""A task's result is a declared schema (chalicelib/attempt.py): its round trips, what it reads of
an older version's plain dict, and that nothing reads it by string key again."""

from __future__ import annotations

import json
import re
import sqlite3
from pathlib import Path

import msgspec
import pytest

from chalicelib.attempt import AttemptResult, CacheUse, decode_result, encode_result, result_from_dict
from chalicelib.backends.local.sqlite_state import SqliteStateStore
from chalicelib.engine import events as ev
from chalicelib.engine.records import TaskRecord, Try, legacy_bookkeeping
from chalicelib.engine.states import TaskState

REPO = Path(__file__).resolve().parents[2]

FULL = AttemptResult(
    exit_code=0, started_at=1.5, finished_at=3.0, duration_s=1.5, peak_rss_mb=12.5, bytes_in=10, bytes_out=20,
    outputs={"out/a.txt": "ab" * 32}, log_key="runs/r/logs/a.1.log", log_tail="done\n",
    cache=CacheUse(hits=1, misses=2, bytes_from_origin=3, bytes_from_cache=4, memo="miss"), worker="w1",
    compute_s=1.0, function_mb=1769, container_cpu=0.25, container_memory_mb=512, lambda_error="Runtime.Exit",
    outputs_omitted=3, result_shed=True, result_truncated=True, result_key="runs/r/results/a/0123456789abcdef.json",
)


def test_every_field_round_trips_through_json() -> None:
    assert decode_result(encode_result(FULL)) == FULL
    assert result_from_dict(json.loads(json.dumps(FULL.to_dict()))) == FULL
    assert set(FULL.to_dict()) == set(AttemptResult.__struct_fields__)  # every field set: every key written


def test_only_the_fields_that_are_set_are_written() -> None:
    assert AttemptResult().to_dict() == {}
    assert encode_result(AttemptResult()) == b"{}"
    assert AttemptResult(exit_code=0, bytes_out=0, log_tail="x").to_dict() == {
        "exit_code": 0, "bytes_out": 0, "log_tail": "x"}  # a zero that was set is kept


def test_an_event_carries_the_result_as_a_json_object_and_back() -> None:
    done = ev.TaskSucceeded("r", "a", 2, FULL, cached=True)
    data = json.loads(json.dumps(done.to_dict()))
    assert data["kind"] == "succeeded" and data["result"] == FULL.to_dict()
    assert ev.event_from_dict(data) == done
    failed = ev.TaskFailed("r", "a", 1, "OOM", AttemptResult(log_tail="killed"))
    assert failed.to_dict()["result"] == {"log_tail": "killed"}
    assert ev.event_from_dict(failed.to_dict()) == failed


def test_a_bad_result_in_an_event_is_one_clear_error() -> None:
    with pytest.raises(ValueError, match=r"bad succeeded event: not a task result.*exit_code"):
        ev.event_from_dict({"kind": "succeeded", "run_id": "r", "task_id": "a", "attempt": 1,
                            "result": {"exit_code": "zero"}})
    with pytest.raises(ValueError, match="not a task result"):
        decode_result(b"[1, 2]")


# What the previous version stored and sent: a plain dict with keys this one does not declare
# (the engine's bookkeeping, the simulator's placement) and without ones it added.
LEGACY = {
    "exit_code": 1, "started_at": 10, "finished_at": 12.5, "duration_s": 2.5, "bytes_in": 7, "bytes_out": 0,
    "peak_rss_mb": 40.1, "cache": {"hits": 1, "misses": 2, "bytes_from_origin": 3, "bytes_from_cache": 4,
                                   "memo": "miss", "later": True},
    "log_key": "runs/r1/logs/a.2.log", "log_tail": "exited with code 1", "placement": "container",
    "lost_workers": 1, "resources": {"memory_mb": 4096}, "failed_parent": "p0",
    "tries": [{"attempt": 1, "reason": "LEASE_EXPIRED", "placement": "function", "started_at": 1.0}],
}


def test_a_result_of_the_previous_version_decodes_ignoring_unknown_keys() -> None:
    want = AttemptResult(exit_code=1, started_at=10.0, finished_at=12.5, duration_s=2.5, bytes_in=7, bytes_out=0,
                         peak_rss_mb=40.1, cache=CacheUse(1, 2, 3, 4, "miss"), log_key="runs/r1/logs/a.2.log",
                         log_tail="exited with code 1")
    assert decode_result(json.dumps(LEGACY)) == want
    assert result_from_dict(LEGACY) == want
    assert decode_result("{}") == AttemptResult()
    old_event = {"kind": "failed", "run_id": "r", "task_id": "a", "attempt": 2, "reason": "NONZERO_EXIT",
                 "result": LEGACY}
    assert ev.event_from_dict(old_event) == ev.TaskFailed("r", "a", 2, "NONZERO_EXIT", want)


def test_the_engine_bookkeeping_an_old_result_kept_is_lifted_onto_the_record() -> None:
    assert legacy_bookkeeping(json.dumps(LEGACY)) == {
        "lost_workers": 1, "resources": {"memory_mb": 4096.0}, "failed_parent": "p0",
        "tries": (Try(1, "LEASE_EXPIRED", "function", started_at=1.0),)}
    assert legacy_bookkeeping(encode_result(FULL)) == {}  # this version's result has none
    # a log tail that mentions the names is text, not keys
    assert legacy_bookkeeping(encode_result(AttemptResult(log_tail='{"tries": 3, "lost_workers": 2}'))) == {}
    assert legacy_bookkeeping('{"tries": "not a list", "lost_workers": 2}') == {"lost_workers": 2}


# The tasks table as the previous version created it (no bookkeeping columns).
OLD_TASKS = """
CREATE TABLE tasks (
  run_id TEXT NOT NULL, task_id TEXT NOT NULL, state TEXT NOT NULL, attempt INTEGER NOT NULL,
  placement TEXT NOT NULL, pending INTEGER NOT NULL, max_attempts INTEGER NOT NULL,
  lease_expires REAL, not_before REAL, started_at REAL, finished_at REAL, exit_code INTEGER,
  reason TEXT, result TEXT, seq INTEGER NOT NULL, prev_state TEXT,
  PRIMARY KEY (run_id, task_id)
) WITHOUT ROWID;
"""


def test_a_database_of_the_previous_version_opens_and_reads(tmp_path: Path) -> None:
    path = str(tmp_path / "state.db")
    db = sqlite3.connect(path)
    db.executescript(OLD_TASKS)
    db.execute("INSERT INTO tasks VALUES ('r1','a','FAILED',2,'container',0,2,NULL,NULL,10.0,12.5,1,"
               "'NONZERO_EXIT',?,0,NULL)", (json.dumps(LEGACY),))
    db.commit()
    db.close()
    store = SqliteStateStore(path)
    try:
        rec = store.get_task("r1", "a")
        assert rec.result is not None and rec.result.exit_code == 1 and rec.result.cache == CacheUse(1, 2, 3, 4, "miss")
        assert (rec.lost_workers, rec.resources, rec.failed_parent, len(rec.tries)) == (1, {"memory_mb": 4096.0},
                                                                                        "p0", 1)
        moved = store.update_task("r1", "a", [TaskState.FAILED], 2, {"lost_workers": 2})
        assert moved == store.get_task("r1", "a") and (moved.lost_workers, len(moved.tries)) == (2, 1)
        # the engine writes its bookkeeping with the result, which ends the old form
        moved = store.update_task("r1", "a", [TaskState.FAILED], 2, {"result": AttemptResult(exit_code=3),
                                                                      "tries": (), "resources": {}})
        assert moved == store.get_task("r1", "a")
        assert (moved.lost_workers, moved.tries, moved.resources, moved.failed_parent) == (2, (), {}, None)
    finally:
        store.close()


def test_a_task_record_round_trips_with_its_bookkeeping() -> None:
    rec = TaskRecord("r", "a", TaskState.READY, 3, "container", 0, result=FULL, lost_workers=1,
                     resources={"memory_mb": 2048.0}, tries=(Try(1, "OOM", "function", duration_s=2.0),),
                     failed_parent=None)
    assert msgspec.json.decode(msgspec.json.encode(rec), type=TaskRecord) == rec


# ---- nothing reads a task's result by string key -----------------------------------------------

# `result.get("x")`, `result["x"]`, `(rec.result or {}).get("x")`: what reading the result as a
# dict looked like. The typed code cannot (mypy: AttemptResult has no .get); this catches the
# untyped corners (Any) and the scripts.
DICT_READ = re.compile(r"""\bresult\b\)?\s*(?:\.get\(|\[)\s*["']|\.result\s+or\s+\{\}\)\s*(?:\.get\(|\[)""")
SCANNED = ("chalicelib", "workers", "updraft", "app.py", "scripts")
NOT_A_TASK_RESULT = {
    "chalicelib/cwl/launch.py",  # a CWL step's own output object
    "scripts/bench-overhead", "scripts/bench-peers", "scripts/peers/engines.py",  # the CLI's JSON
}


def _sources() -> list[Path]:
    out: list[Path] = []
    for name in SCANNED:
        root = REPO / name
        if root.is_file():
            out.append(root)
            continue
        for path in sorted(root.rglob("*")):
            if path.is_file() and (path.suffix == ".py" or (path.parent.name == "scripts" and not path.suffix)):
                out.append(path)
    return out


def test_the_pattern_finds_what_it_is_meant_to() -> None:
    for line in ('x = result.get("log_tail")', "d = rec.result['outputs']", 'c = (rec.result or {}).get("cache")',
                 'y = (result).get("a")'):
        assert DICT_READ.search(line), line
    for line in ('changes["result"] = r', "result.log_tail", 'fields["result"]', "results.get(k)"):
        assert not DICT_READ.search(line), line


def test_no_code_reads_a_task_result_by_string_key() -> None:
    found = []
    for path in _sources():
        rel = path.relative_to(REPO).as_posix()
        if rel in NOT_A_TASK_RESULT:
            continue
        for n, line in enumerate(path.read_text(errors="replace").splitlines(), 1):
            if DICT_READ.search(line):
                found.append(f"{rel}:{n}: {line.strip()}")
    assert not found, "a task's result is an AttemptResult: read its attributes\n" + "\n".join(found)


def test_the_documented_schema_lists_every_field() -> None:
    doc = (REPO / "docs" / "architecture.md").read_text()
    start = doc.index("## A task's result")
    end = doc.find("\n## ", start)
    section = doc[start:end if end != -1 else None]
    for name in (*AttemptResult.__struct_fields__, "lost_workers", "resources", "tries", "failed_parent"):
        assert f"`{name}`" in section, f"docs/architecture.md, A task's result: {name} is not described"
