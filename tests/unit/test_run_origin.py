"""What a run was submitted with (service/run_origin.py): stored, compared, merged."""

from __future__ import annotations

from pathlib import Path

import pytest

from chalicelib.errors import ConfigError
from chalicelib.service import run_origin as ro


def test_capture_keeps_given_options_as_absolute_paths(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "wf.json").write_text("{}")
    got = ro.capture({"no_cache": True, "concurrency": None, "emulate_lambda": False, "data": "in",
                      "rerun": ["a*"], "json": True, "deadline": 0.0, "jx_args": []}, "wf.json")
    assert got.file == str(tmp_path / "wf.json") and got.sha256 is not None
    assert got.options == {"no_cache": True, "data": str(tmp_path / "in"), "rerun": ["a*"], "deadline": 0.0}
    assert ro.Submitted.of({ro.KEY: got.to_dict()}) == got
    assert ro.Submitted.of({"data_dir": None}) is None


def test_compare_sees_an_edit_and_a_removed_file(tmp_path: Path) -> None:
    wf = tmp_path / "wf.json"
    wf.write_text("{}")
    stored = ro.capture({}, str(wf))
    assert ro.compare(stored) == ro.Change(str(wf), "unchanged")
    wf.write_text('{"name": "x"}')
    assert ro.compare(stored) == ro.Change(str(wf), "edited")
    wf.unlink()
    assert ro.compare(stored) == ro.Change(str(wf), "gone")


def test_a_flag_given_to_resume_overrides_the_stored_one_and_is_named() -> None:
    stored = ro.Submitted(file="/w.json", sha256="0" * 64, options={"no_cache": True, "concurrency": 4})
    opts, overrides = ro.execution_options(stored, {"no_cache": None, "concurrency": 2, "emulate_lambda": None})
    assert opts == {"no_cache": True, "emulate_lambda": None, "concurrency": 2, "rerun": None}
    assert [o.describe() for o in overrides] == ["--concurrency 2 given: overrides the run's 4"]
    opts, overrides = ro.execution_options(stored, {"no_cache": False, "emulate_lambda": True})
    assert opts["no_cache"] is False and opts["emulate_lambda"] is True
    assert [o.describe() for o in overrides] == ["--cache given: overrides the run's --no-cache",
                                                 "--emulate-lambda given: overrides the run's --no-emulate-lambda"]
    _, same = ro.execution_options(stored, {"no_cache": True})
    assert same == []  # the same value is no override


def test_choose_reloads_an_edited_file_unless_told_to_replay() -> None:
    edited, same = ro.Change("/w", "edited"), ro.Change("/w", "unchanged")
    stored = ro.Submitted(file="/w", sha256="0" * 64)
    assert ro.choose("r", stored, edited, None) == ro.RELOAD
    assert ro.choose("r", stored, edited, False) == ro.REPLAY
    assert ro.choose("r", stored, same, None) == ro.REPLAY
    assert ro.choose("r", None, None, None) == ro.REPLAY
    with pytest.raises(ConfigError, match="--reload has nothing to re-read"):
        ro.choose("r", None, None, True)
    with pytest.raises(ConfigError, match="is gone"):
        ro.choose("r", stored, ro.Change("/w", "gone"), True)
