"""The HECIL-shaped example's pure parts: the DAG and the banded edit distance."""

from __future__ import annotations

import json
import random
from pathlib import Path

import pytest

from chalicelib.workflow.formats import load, loads
from chalicelib.workflow.validate import validate
from examples.hecil import check, dag
from examples.hecil.generate import generate


def full_distance(a: str, b: str) -> int:
    prev = list(range(len(b) + 1))
    for i, ca in enumerate(a, 1):
        cur = [i]
        for j, cb in enumerate(b, 1):
            cur.append(min(prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + (ca != cb)))
        prev = cur
    return prev[-1]


def test_banded_distance_equals_the_full_one_near_the_diagonal() -> None:
    rng = random.Random(2)
    for _ in range(30):
        a = "".join(rng.choice("ACGT") for _ in range(rng.randint(1, 60)))
        b = list(a)
        for _ in range(rng.randint(0, 6)):
            k = rng.randrange(len(b) + 1)
            op = rng.random()
            if op < 0.3 and b:
                b[min(k, len(b) - 1)] = rng.choice("ACGT")
            elif op < 0.6:
                b.insert(k, rng.choice("ACGT"))
            elif b:
                del b[min(k, len(b) - 1)]
        other = "".join(b) or "A"
        assert check.banded_distance(a, other, band=20) == full_distance(a, other)
    assert check.banded_distance("", "ACG") == 3


def test_partitions_cover_every_read_once() -> None:
    reads = [f"r{i}" for i in range(10)]
    parts = dag.partitions(reads, 4)
    assert len(parts) == 4 and sorted(r for p in parts for r in p) == sorted(reads)
    assert dag.partitions(reads[:2], 5) == [["r0"], ["r1"]]


def test_workflow_shape_and_shared_index() -> None:
    wf = validate(loads(json.dumps(dag.build("h", [f"long{i:03d}" for i in range(6)], chunks=3, parts=2))))
    assert len(wf.tasks) == 2 * 3 + 2 + 5
    index = set(dag.index_files())
    mem = [t for t in wf.tasks if t.task_type == "bwa_mem"]
    assert len(mem) == 3 and all(index <= set(t.inputs) for t in mem)
    correct = [t for t in wf.tasks if t.task_type == "correct"]
    assert all(set(t.inputs) == {dag.MERGED, dag.MERGED + ".bai"} for t in correct)
    assert "long000" in correct[0].shell and "long001" in correct[1].shell  # type: ignore[operator]
    with pytest.raises(ValueError):
        dag.build("h", [], chunks=1, parts=1)


def test_generated_files_are_deterministic_and_the_workflow_valid(tmp_path: Path) -> None:
    a = generate(str(tmp_path / "a"), genome_kb=6, long_kb=2, coverage=10, chunks=2, parts=2, seed=3)
    generate(str(tmp_path / "b"), genome_kb=6, long_kb=2, coverage=10, chunks=2, parts=2, seed=3)
    for name in ("data/long_reads.fa", "data/short_reads.fa", "truth/sources.fa", "workflow.json"):
        assert (tmp_path / "a" / name).read_bytes() == (tmp_path / "b" / name).read_bytes()
    wf = validate(load(str(a["workflow"])))
    assert a["long_reads"] == 3 and len(wf.tasks) == 2 * 2 + 2 + 5
