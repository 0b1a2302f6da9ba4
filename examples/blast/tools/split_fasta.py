"""Split a FASTA file into N chunk files of nearly equal record counts (round robin by size).

Usage: python3 split_fasta.py IN.fasta OUTDIR N

Writes OUTDIR/chunk_000.fa ... OUTDIR/chunk_{N-1}.fa; every chunk file is written, even an
empty one, so a workflow can declare all N as outputs. Standard library only.
"""

from __future__ import annotations

import os
import sys


def read_fasta(path: str) -> list[tuple[str, str]]:
    records: list[tuple[str, str]] = []
    header: str | None = None
    parts: list[str] = []
    with open(path, encoding="ascii") as fh:
        for line in fh:
            line = line.strip()
            if line.startswith(">"):
                if header is not None:
                    records.append((header, "".join(parts)))
                header, parts = line[1:], []
            elif line:
                if header is None:
                    raise ValueError(f"{path}: sequence before the first '>' header")
                parts.append(line)
    if header is not None:
        records.append((header, "".join(parts)))
    return records


def chunk_name(outdir: str, index: int) -> str:
    return os.path.join(outdir, f"chunk_{index:03d}.fa")


def main(argv: list[str]) -> int:
    if len(argv) != 3 or not argv[2].isdigit() or int(argv[2]) < 1:
        print(__doc__, file=sys.stderr)
        return 2
    src, outdir, n = argv[0], argv[1], int(argv[2])
    records = read_fasta(src)
    # Longest first into the currently lightest chunk: balanced work per blastn task.
    chunks: list[list[tuple[str, str]]] = [[] for _ in range(n)]
    load = [0] * n
    for header, seq in sorted(records, key=lambda r: (-len(r[1]), r[0])):
        k = load.index(min(load))
        chunks[k].append((header, seq))
        load[k] += len(seq)
    os.makedirs(outdir, exist_ok=True)
    for k, chunk in enumerate(chunks):
        with open(chunk_name(outdir, k), "w", encoding="ascii") as fh:
            for header, seq in chunk:
                fh.write(f">{header}\n{seq}\n")
    print(f"{len(records)} records into {n} chunks, bases per chunk {min(load)}..{max(load)}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
