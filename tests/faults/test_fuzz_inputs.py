"""Random and mutated workflow files: every one is accepted or rejected with a clear error;
none crashes the importers or leaves anything written."""

from __future__ import annotations

import json
import random
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from chalicelib.backends.local.runtime import LocalRuntime
from chalicelib.errors import UpdraftError, WorkflowError
from chalicelib.workflow.formats import loads
from chalicelib.workflow.validate import validate

SHARED = Path(__file__).resolve().parents[2].parent / "shared" / "workflows"

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda children: st.lists(children, max_size=5) | st.dictionaries(st.text(max_size=10), children, max_size=5),
    max_leaves=30,
)

task_like = st.fixed_dictionaries(
    {"id": st.one_of(st.text(max_size=12), st.integers(), st.none())},
    optional={
        "command": st.one_of(st.lists(st.text(max_size=8), max_size=4), st.text(max_size=8), st.integers()),
        "shell": st.one_of(st.text(max_size=20), st.none(), st.integers()),
        "inputs": st.lists(st.sampled_from(["a", "b", "/etc/passwd", "../x", "c/d", "", "a\\b"]), max_size=4),
        "outputs": st.lists(st.sampled_from(["a", "b", "c/d", "..", "e"]), max_size=3),
        "after": st.lists(st.text(max_size=4), max_size=3),
        "resources": st.dictionaries(st.sampled_from(["memory_mb", "cpus", "timeout_s", "disk_mb", "gpu"]),
                                     st.one_of(st.integers(-5, 10**6), st.text(max_size=3)), max_size=3),
        "placement": st.sampled_from(["function", "container", "auto", "local", "moon", 3]),
        "retries": st.one_of(st.integers(-3, 30), st.text(max_size=2)),
    },
)


def accept_or_reject(text: str) -> None:
    try:
        validate(loads(text))
    except WorkflowError as exc:
        assert exc.problems and all(str(p) for p in exc.problems)
        assert "Traceback" not in str(exc)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(json_values)
def test_arbitrary_json_never_crashes(value: object) -> None:
    accept_or_reject(json.dumps(value))


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(task_like, min_size=1, max_size=6))
def test_task_shaped_garbage_is_accepted_or_rejected_cleanly(tasks: list[dict]) -> None:
    accept_or_reject(json.dumps({"name": "fuzz", "tasks": tasks}))


@settings(max_examples=100, deadline=None)
@given(st.text(max_size=400))
def test_arbitrary_text_never_crashes(text: str) -> None:
    accept_or_reject(text)


def _mutate(text: str, rng: random.Random) -> str:
    chars = list(text)
    for _ in range(rng.randint(1, 8)):
        op = rng.random()
        pos = rng.randrange(len(chars) or 1)
        if op < 0.4 and chars:
            del chars[pos]
        elif op < 0.7:
            chars.insert(pos, rng.choice('{}[]",:\n\t\\ x0$'))
        elif chars:
            chars[pos] = rng.choice("\"'{}abc19:\n")
    return "".join(chars)


def shared_files() -> list[Path]:
    if not SHARED.is_dir():
        return []
    return sorted(p for p in SHARED.rglob("*") if p.suffix in (".json", ".mf", ".jx") and p.stat().st_size < 200_000)


@pytest.mark.parametrize("path", shared_files(), ids=lambda p: p.name)
def test_mutated_real_workflow_files_never_crash(path: Path) -> None:
    text = path.read_text(errors="replace")
    rng = random.Random(path.name)
    for _ in range(15):
        accept_or_reject(_mutate(text, rng))


def test_pathological_inputs_get_clear_errors() -> None:
    cases = {
        "huge id": json.dumps({"tasks": [{"id": "x" * 1_000_000, "command": ["true"]}]}),
        "deep nesting": "[" * 200_000,
        "deep chain": json.dumps({"tasks": [{"id": f"t{i}", "command": ["true"],
                                             **({"after": [f"t{i - 1}"]} if i else {})} for i in range(30_000)]}),
        "cycle": json.dumps({"tasks": [{"id": "a", "command": ["x"], "after": ["b"]},
                                       {"id": "b", "command": ["x"], "after": ["a"]}]}),
        "unicode and metacharacters": json.dumps({"tasks": [{"id": "ünï-$(rm)", "command": ["echo", "$(rm -rf /); `x`"],
                                                             "outputs": ["ö/ä.txt"]}]}),
        "colliding outputs": json.dumps({"tasks": [{"id": "a", "command": ["x"], "outputs": ["o"]},
                                                   {"id": "b", "command": ["x"], "outputs": ["o"]}]}),
    }
    for name, text in cases.items():
        try:
            validate(loads(text))
            ok = True
        except WorkflowError as exc:
            ok = False
            assert str(exc).strip(), name
        assert ok == (name in ("deep chain", "unicode and metacharacters")), name


def test_over_the_task_limit_is_refused_and_nothing_is_written(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("UPDRAFT_MAX_TASKS", "1000")
    text = json.dumps({"tasks": [{"id": f"t{i}", "command": ["true"]} for i in range(100_000)]})
    rt = LocalRuntime(str(tmp_path / "wd"))
    with pytest.raises(UpdraftError, match="limit is 1000"):
        rt.submit(loads(text))
    assert rt.store.list_runs() == [] and not list((tmp_path / "wd" / "blobs").rglob("*.json"))
