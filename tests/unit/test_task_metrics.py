"""The metrics a finished attempt emits (EMF through powertools): by outcome, by type and
placement, and the bytes the cache saved."""

from __future__ import annotations

import json

import pytest

from chalicelib.attempt import AttemptResult, CacheUse
from chalicelib.backends.aws.attempts import record_outcome
from chalicelib.backends.aws.observability import Observability
from chalicelib.engine.events import TaskFailed, TaskSucceeded


def emf_documents(out: str) -> list[dict]:
    docs = []
    for line in out.splitlines():
        try:
            doc = json.loads(line)
        except ValueError:
            continue
        if isinstance(doc, dict) and "_aws" in doc:
            docs.append(doc)
    return docs


def test_outcome_duration_and_cache_bytes_by_type_and_placement(capsys: pytest.CaptureFixture[str]) -> None:
    obs = Observability(namespace="UpdraftTest")
    ok = TaskSucceeded("r", "t", 1, AttemptResult(duration_s=2.5, cache=CacheUse(bytes_from_cache=4096)))
    record_outcome(obs, ok, "mProjectPP", "function")
    record_outcome(obs, TaskSucceeded("r", "u", 1, AttemptResult(duration_s=0.0), cached=True), "mAdd", "container")
    record_outcome(obs, TaskFailed("r", "v", 1, "OOM", AttemptResult(duration_s=1.0)), "mAdd", "container")
    docs = emf_documents(capsys.readouterr().out)
    by_type = [d for d in docs if "TaskDurationByType" in d]
    assert {(d["TaskType"], d["Placement"], d["TaskDurationByType"][0]) for d in by_type} == {
        ("mProjectPP", "function", 2.5), ("mAdd", "container", 0.0), ("mAdd", "container", 1.0)}
    outcomes = sorted((d["Outcome"], d["Placement"]) for d in docs if "TasksByOutcome" in d)
    assert outcomes == [("cached", "container"), ("failed", "container"), ("succeeded", "function")]
    saved = [d for d in docs if "CacheBytesSaved" in d]
    assert [(d["CacheBytesSaved"][0], d["Placement"]) for d in saved] == [(4096.0, "function")]
