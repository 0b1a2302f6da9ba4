"""The BLAST example's pure parts: synthetic data, the DAG, split and merge, the truth check."""

from __future__ import annotations

import json
import random
from pathlib import Path

import pytest

from chalicelib.workflow.formats import load, loads
from chalicelib.workflow.validate import validate
from examples.blast import check, dag, synth
from examples.blast.generate import generate
from examples.blast.tools import merge_hits, split_fasta


def test_mutate_changes_about_the_requested_fraction() -> None:
    rng = random.Random(3)
    seq = synth.random_sequence(rng, 5000)
    same_length = synth.mutate(rng, seq, substitution=0.05, indel=0.0)
    diffs = sum(a != b for a, b in zip(seq, same_length, strict=True))
    assert 150 < diffs < 350
    with_indels = synth.mutate(rng, seq, substitution=0.0, indel=0.02)
    assert with_indels != seq


def test_reverse_complement() -> None:
    assert synth.reverse_complement("AACGTT") == "AACGTT"
    assert synth.reverse_complement("ACCG") == "CGGT"


def test_planted_queries_come_from_their_source_and_decoys_from_nowhere() -> None:
    rng = random.Random(5)
    db = synth.make_database(rng, 20, 1000)
    queries = synth.plant_queries(rng, db, 30, 4, substitution=0.0, indel=0.0)
    assert len(queries) == 34 and len({q.id for q in queries}) == 34
    for q in queries:
        if q.source is None:
            assert q.id.startswith("decoy")
            continue
        piece = q.sequence if q.strand == "plus" else synth.reverse_complement(q.sequence)
        assert db[q.source][q.start:q.start + len(piece)] == piece
    assert {q.strand for q in queries if q.source} == {"plus", "minus"}


def test_generation_is_deterministic_for_a_seed(tmp_path: Path) -> None:
    generate(str(tmp_path / "a"), sequences=30, length=500, queries=10, chunks=3, seed=9)
    generate(str(tmp_path / "b"), sequences=30, length=500, queries=10, chunks=3, seed=9)
    generate(str(tmp_path / "c"), sequences=30, length=500, queries=10, chunks=3, seed=10)
    for name in ("data/db.fasta", "data/queries.fasta", "truth/expected.tsv"):
        assert (tmp_path / "a" / name).read_bytes() == (tmp_path / "b" / name).read_bytes()
    assert (tmp_path / "a" / "data/db.fasta").read_bytes() != (tmp_path / "c" / "data/db.fasta").read_bytes()


def test_generated_workflow_is_valid_and_its_inputs_exist(tmp_path: Path) -> None:
    summary = generate(str(tmp_path), sequences=30, length=500, queries=10, chunks=4, seed=1)
    wf = validate(load(str(summary["workflow"])))
    assert len(wf.tasks) == 4 + 3
    for f in wf.inputs:
        assert (tmp_path / "data" / f.path).is_file(), f.path


def test_every_blastn_task_reads_the_same_database_files() -> None:
    wf = validate(loads(json.dumps(dag.build("b", 5))))
    blastn = [t for t in wf.tasks if t.task_type == "blastn"]
    assert len(blastn) == 5
    db = set(dag.db_files())
    assert set(wf.task_map()["makeblastdb"].outputs) == db
    for t in blastn:
        assert db <= set(t.inputs)
        assert t.command[t.command.index("-db") + 1] == dag.DB_NAME
    assert set(wf.task_map()["merge"].inputs) >= {o for t in blastn for o in t.outputs}


def test_build_rejects_zero_chunks() -> None:
    with pytest.raises(ValueError):
        dag.build("b", 0)


def test_split_balances_bases_and_writes_every_chunk(tmp_path: Path) -> None:
    src = tmp_path / "q.fa"
    src.write_text(synth.fasta([(f"r{i}", "A" * (100 + i)) for i in range(10)], width=30))
    assert split_fasta.main([str(src), str(tmp_path / "out"), "4"]) == 0
    chunks = [split_fasta.read_fasta(split_fasta.chunk_name(str(tmp_path / "out"), k)) for k in range(4)]
    assert sorted(h for c in chunks for h, _ in c) == sorted(f"r{i}" for i in range(10))
    loads_ = [sum(len(s) for _, s in c) for c in chunks]
    assert max(loads_) - min(loads_) <= 110
    assert split_fasta.main([str(src), str(tmp_path / "more"), "12"]) == 0
    assert (tmp_path / "more" / "chunk_011.fa").read_text() == ""


def test_split_rejects_sequence_before_a_header(tmp_path: Path) -> None:
    src = tmp_path / "bad.fa"
    src.write_text("ACGT\n>r1\nACGT\n")
    with pytest.raises(ValueError):
        split_fasta.read_fasta(str(src))


def test_merge_keeps_every_hit_and_the_best_per_query(tmp_path: Path) -> None:
    (tmp_path / "a.tsv").write_text("q1\ts1\t90.0\t200\t1e-50\t300\tplus\nq1\ts2\t99.0\t100\t1e-30\t150\tplus\n")
    (tmp_path / "b.tsv").write_text("q2\ts9\t95.0\t300\t1e-90\t500\tminus\nq1\ts3\t99.0\t300\t1e-80\t400\tplus\n")
    (tmp_path / "c.tsv").write_text("")
    hits, best = tmp_path / "hits.tsv", tmp_path / "best.tsv"
    args = [str(hits), str(best), *(str(tmp_path / n) for n in ("a.tsv", "b.tsv", "c.tsv"))]
    assert merge_hits.main(args) == 0
    assert len(check.read_table(str(hits))) == 4
    assert [(r[0], r[1]) for r in check.read_table(str(best))] == [("q1", "s3"), ("q2", "s9")]


def test_merge_rejects_a_malformed_line(tmp_path: Path) -> None:
    (tmp_path / "a.tsv").write_text("q1\ts1\t90.0\n")
    with pytest.raises(ValueError, match="columns"):
        merge_hits.main([str(tmp_path / "h"), str(tmp_path / "b"), str(tmp_path / "a.tsv")])


def test_check_reports_wrong_missing_and_decoy_hits(tmp_path: Path) -> None:
    (tmp_path / "truth").mkdir()
    (tmp_path / "truth" / "expected.tsv").write_text(
        "#query\tsource\tstart\tstrand\nq1\ts1\t0\tplus\nq2\ts2\t5\tminus\nq3\ts3\t0\tplus\n"
        "q4\ts4\t0\tplus\ndecoy001\t-\t0\tplus\n"
    )
    best = tmp_path / "best.tsv"
    best.write_text(
        "#h\nq1\ts1\t99\t200\t1e-90\t400\tplus\nq2\ts2\t99\t200\t1e-90\t400\tplus\n"
        "q3\ts7\t99\t200\t1e-90\t400\tplus\ndecoy001\ts5\t80\t50\t1e-11\t60\tplus\n"
    )
    found = check.problems(str(tmp_path), str(best))
    assert len(found) == 4
    assert any("q2" in p and "minus" in p for p in found)
    assert any("q3" in p and "s7" in p for p in found)
    assert any("q4" in p and "nothing" in p for p in found)
    assert any("decoy001" in p for p in found)
    best.write_text("q1\ts1\t99\t200\t1e-90\t400\tplus\nq2\ts2\t99\t200\t1e-90\t400\tminus\n"
                    "q3\ts3\t99\t200\t1e-90\t400\tplus\nq4\ts4\t99\t200\t1e-90\t400\tplus\n")
    assert check.problems(str(tmp_path), str(best)) == []
