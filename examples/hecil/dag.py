"""A HECIL-shaped workflow: correct error-prone long reads with accurate short reads.

    bwa index (long reads) ──────────────┐
    split (short reads -> N chunks) ──> bwa mem x N ──> samtools sort x N ──> samtools merge
        ──> samtools index ──> correct x M (samtools consensus per partition of long reads) ──> gather

Every `bwa mem` task reads the same five index files (the shared dependency, as BLAST's
database). Task count: 2 N + M + 5.
"""

from __future__ import annotations

import shlex
from typing import Any

LONG = "long_reads.fa"
SHORT = "short_reads.fa"
INDEX_SUFFIXES = (".amb", ".ann", ".bwt", ".pac", ".sa")
MERGED = "aln/merged.bam"
CORRECTED = "corrected_long_reads.fa"
CONSENSUS = ["samtools", "consensus", "-a", "--show-del", "no", "--show-ins", "yes",
             "-m", "simple", "-d", "2", "-c", "0.5"]


def index_files() -> list[str]:
    return [LONG + s for s in INDEX_SUFFIXES]


def partitions(read_ids: list[str], parts: int) -> list[list[str]]:
    """Long reads dealt round robin into `parts` non-empty partitions (fewer if there are fewer reads)."""
    parts = max(1, min(parts, len(read_ids)))
    return [read_ids[k::parts] for k in range(parts)]


def build(name: str, read_ids: list[str], chunks: int, parts: int, description: str = "") -> dict[str, Any]:
    if chunks < 1 or not read_ids:
        raise ValueError("need at least one chunk and one long read")
    index = index_files()
    chunk_fa = [f"chunks/chunk_{i:03d}.fa" for i in range(chunks)]
    tasks: list[dict[str, Any]] = [
        {"id": "bwa-index", "type": "bwa_index", "command": ["bwa", "index", LONG],
         "inputs": [LONG], "outputs": index},
        {"id": "split", "type": "split",
         "command": ["python3", "tools/split_fasta.py", SHORT, "chunks", str(chunks)],
         "inputs": ["tools/split_fasta.py", SHORT], "outputs": chunk_fa},
    ]
    bams = []
    for i, fa in enumerate(chunk_fa):
        sam, bam = f"aln/chunk_{i:03d}.sam", f"aln/chunk_{i:03d}.bam"
        bams.append(bam)
        tasks.append({"id": f"bwa-mem-{i:03d}", "type": "bwa_mem",
                      "command": ["bwa", "mem", "-t", "1", "-o", sam, LONG, fa],
                      "inputs": [LONG, *index, fa], "outputs": [sam]})
        tasks.append({"id": f"sort-{i:03d}", "type": "samtools_sort",
                      "command": ["samtools", "sort", "-o", bam, sam], "inputs": [sam], "outputs": [bam]})
    tasks.append({"id": "merge", "type": "samtools_merge", "command": ["samtools", "merge", "-f", "-o", MERGED, *bams],
                  "inputs": bams, "outputs": [MERGED]})
    tasks.append({"id": "index-bam", "type": "samtools_index", "command": ["samtools", "index", MERGED],
                  "inputs": [MERGED], "outputs": [MERGED + ".bai"]})
    parts_out = []
    for k, reads in enumerate(partitions(read_ids, parts)):
        out = f"corrected/part_{k:03d}.fa"
        parts_out.append(out)
        consensus = " ".join(shlex.quote(a) for a in CONSENSUS)
        loop = " ".join(shlex.quote(r) for r in reads)
        tasks.append({
            "id": f"correct-{k:03d}", "type": "correct",
            "shell": f"set -e; for r in {loop}; do {consensus} -r \"$r\" {MERGED}; done > {out}",
            "inputs": [MERGED, MERGED + ".bai"], "outputs": [out],
        })
    tasks.append({"id": "gather", "type": "gather", "shell": f"cat {' '.join(parts_out)} > {CORRECTED}",
                  "inputs": parts_out, "outputs": [CORRECTED]})
    return {
        "format": "updraft/v1", "name": name, "description": description,
        "defaults": {"resources": {"memory_mb": 1024, "cpus": 1, "disk_mb": 512, "timeout_s": 600},
                     "placement": "function", "retries": 1},
        "inputs": [LONG, SHORT, "tools/split_fasta.py"],
        "tasks": tasks,
    }
