"""The BLAST workflow: makeblastdb and a query split, then N blastn tasks that all read the
same database files (the shared dependency a cache keeps from being fetched N times), then merge.

    makeblastdb --+
                  +--> blastn x N --> merge
    split --------+

Task count: N + 3.
"""

from __future__ import annotations

from typing import Any

DB_NAME = "db/synth"
# What makeblastdb 2.12 writes for a nucleotide database (BLAST database format 5).
DB_SUFFIXES = (".ndb", ".nhr", ".nin", ".not", ".nsq", ".ntf", ".nto")
OUTFMT = "6 qseqid sseqid pident length evalue bitscore sstrand"
EVALUE = "1e-10"
HITS = "results/hits.tsv"
BEST = "results/best_hits.tsv"


def db_files() -> list[str]:
    return [DB_NAME + s for s in DB_SUFFIXES]


def chunk_path(index: int) -> str:
    return f"chunks/chunk_{index:03d}.fa"


def build(name: str, chunks: int, description: str = "") -> dict[str, Any]:
    if chunks < 1:
        raise ValueError(f"chunks must be at least 1, got {chunks}")
    db = db_files()
    tasks: list[dict[str, Any]] = [
        {
            "id": "makeblastdb", "type": "makeblastdb",
            "command": ["makeblastdb", "-in", "db.fasta", "-dbtype", "nucl", "-out", DB_NAME, "-title", "synth"],
            "inputs": ["db.fasta"], "outputs": db,
        },
        {
            "id": "split", "type": "split",
            "command": ["python3", "tools/split_fasta.py", "queries.fasta", "chunks", str(chunks)],
            "inputs": ["tools/split_fasta.py", "queries.fasta"],
            "outputs": [chunk_path(i) for i in range(chunks)],
        },
    ]
    hits = [f"hits/chunk_{i:03d}.tsv" for i in range(chunks)]
    for i, out in enumerate(hits):
        tasks.append({
            "id": f"blastn-{i:03d}", "type": "blastn",
            "command": [
                "blastn", "-task", "blastn", "-db", DB_NAME, "-query", chunk_path(i), "-out", out,
                "-outfmt", OUTFMT, "-evalue", EVALUE, "-max_target_seqs", "5", "-num_threads", "1",
            ],
            "inputs": [*db, chunk_path(i)], "outputs": [out],
        })
    tasks.append({
        "id": "merge", "type": "merge",
        "command": ["python3", "tools/merge_hits.py", HITS, BEST, *hits],
        "inputs": ["tools/merge_hits.py", *hits], "outputs": [HITS, BEST],
    })
    return {
        "format": "updraft/v1",
        "name": name,
        "description": description,
        "defaults": {
            "resources": {"memory_mb": 1024, "cpus": 1, "disk_mb": 512, "timeout_s": 600},
            "placement": "function",
            "retries": 1,
        },
        "inputs": ["db.fasta", "queries.fasta", "tools/split_fasta.py", "tools/merge_hits.py"],
        "tasks": tasks,
    }
