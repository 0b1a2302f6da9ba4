"""Source names to task ids and data paths: valid, deterministic, never merged."""

from __future__ import annotations

import pytest

from chalicelib.workflow.formats.names import (
    IdAllocator,
    PathError,
    PathMapper,
    clean_id,
    numbered_ids,
)
from chalicelib.workflow.validate import MAX_ID_LENGTH, path_problem


def test_clean_id_replaces_what_validation_forbids() -> None:
    assert clean_id("run cmd/0.5\tx") == "run_cmd_0.5_x"
    assert clean_id("  ") == "task"
    long = clean_id("x" * 500)
    assert len(long) == MAX_ID_LENGTH and long != clean_id("x" * 499)


def test_allocator_suffixes_clashes_in_order() -> None:
    alloc = IdAllocator()
    assert [alloc.take(n) for n in ["a/b", "a_b", "a b", "c"]] == ["a_b", "a_b-2", "a_b-3", "c"]


def test_numbered_ids_pad_and_never_steal_a_unique_name() -> None:
    names = ["mAdd", "mDiff", "mDiff-1", *["mDiff"] * 9]
    ids = numbered_ids(names)
    assert ids[0] == "mAdd" and ids[2] == "mDiff-1"
    assert ids[1] == "mDiff-01" and ids[-1] == "mDiff-10"
    assert len(set(ids)) == len(ids)
    assert numbered_ids(names) == ids  # deterministic


@pytest.mark.parametrize(
    ("raw", "safe", "reported"),
    [
        ("a.txt", "a.txt", False),
        ("./dir//b.txt", "dir/b.txt", False),
        ("out/", "out", False),
        ("/usr/bin/perl", "_abs/usr/bin/perl", True),
        ("../x/../y", "_up/x/_up/y", True),
        ("dir\\file", "dir/file", True),
        ("C:\\data\\f.fits", "_abs/C/data/f.fits", True),
    ],
)
def test_paths_become_safe_relative_paths(raw: str, safe: str, reported: bool) -> None:
    mapper = PathMapper()
    assert mapper.map(raw) == safe and path_problem(safe) is None
    assert (raw in mapper.changed) == reported
    assert bool(mapper.notes()) == reported


def test_two_sources_never_share_a_path() -> None:
    mapper = PathMapper()
    mapper.map("/x")
    assert mapper.map("./dir/../f") == "dir/_up/f"
    with pytest.raises(PathError, match="both map to '_abs/x'"):
        mapper.map("_abs/x")


@pytest.mark.parametrize("raw", ["", "  ", ".", "/", "a\x00b"])
def test_paths_that_name_no_file_are_refused(raw: str) -> None:
    with pytest.raises(PathError):
        PathMapper().map(raw)
