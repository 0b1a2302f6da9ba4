"""Which runs `runs gc` deletes, and which task id a mistyped one meant."""

from __future__ import annotations

import pytest

from chalicelib.engine.records import RunRecord
from chalicelib.engine.states import RunState
from chalicelib.errors import ConfigError
from chalicelib.service.cleanup import DAY_S, select_for_gc
from chalicelib.service.suggest import similar_ids

NOW = 100 * DAY_S


def runs() -> list[RunRecord]:
    """Newest first: a RUNNING one, then finished ones 1, 5, 10 and 30 days old."""
    ages = [("live", 0.5, RunState.RUNNING), ("d1", 1, RunState.SUCCEEDED), ("d5", 5, RunState.FAILED),
            ("d10", 10, RunState.CANCELLED), ("d30", 30, RunState.SUCCEEDED)]
    return [RunRecord(rid, "wf", state, NOW - days * DAY_S, 1, f"runs/{rid}/workflow.json")
            for rid, days, state in ages]


@pytest.mark.parametrize(("keep", "older", "doomed"), [
    (2, None, ["d10", "d30"]),  # the RUNNING run is neither deleted nor one of those kept
    (0, None, ["d1", "d5", "d10", "d30"]),
    (None, 7, ["d10", "d30"]),
    (3, 2, ["d30"]),  # both: beyond the 3 newest AND older than 2 days
    (10, None, []),
])
def test_gc_selects_beyond_the_newest_and_older_than(keep: int | None, older: float | None,
                                                      doomed: list[str]) -> None:
    assert [r.run_id for r in select_for_gc(runs(), keep, older, NOW)] == doomed


def test_gc_without_a_limit_is_refused_naming_both() -> None:
    with pytest.raises(ConfigError, match=r"--keep N .* --older-than DAYS"):
        select_for_gc(runs(), None, None, NOW)


def test_ids_are_suggested_whatever_the_case_and_separator() -> None:
    ids = [f"blastn-{i:03d}" for i in range(300)] + ["merge_all"]
    assert similar_ids("blastn_000", ids) == ["blastn-000"]
    assert similar_ids("BLASTN.017", ids) == ["blastn-017"]
    assert similar_ids("Merge-All", ids) == ["merge_all"]
    assert similar_ids("mrge_all", ids) == ["merge_all"]
    assert similar_ids("zzz", ids) == []
