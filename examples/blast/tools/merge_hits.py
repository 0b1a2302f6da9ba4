"""Merge blastn tabular results into one table and one best hit per query.

Usage: python3 merge_hits.py HITS.tsv BEST.tsv CHUNK.tsv...

Input columns (blastn -outfmt "6 qseqid sseqid pident length evalue bitscore sstrand").
HITS.tsv is every hit, sorted by query then descending bit score; BEST.tsv has one line per
query that hit anything, its highest-scoring subject. Standard library only.
"""

from __future__ import annotations

import sys

COLUMNS = ("qseqid", "sseqid", "pident", "length", "evalue", "bitscore", "sstrand")


def read_hits(path: str) -> list[list[str]]:
    rows: list[list[str]] = []
    with open(path, encoding="ascii") as fh:
        for n, line in enumerate(fh, 1):
            if not line.strip() or line.startswith("#"):
                continue
            cells = line.rstrip("\n").split("\t")
            if len(cells) != len(COLUMNS):
                raise ValueError(f"{path}:{n}: {len(cells)} columns, expected {len(COLUMNS)}")
            rows.append(cells)
    return rows


def main(argv: list[str]) -> int:
    if len(argv) < 2:
        print(__doc__, file=sys.stderr)
        return 2
    hits_out, best_out, chunks = argv[0], argv[1], argv[2:]
    rows = [row for path in chunks for row in read_hits(path)]
    rows.sort(key=lambda r: (r[0], -float(r[5]), r[1]))
    best: dict[str, list[str]] = {}
    for row in rows:
        best.setdefault(row[0], row)
    header = "#" + "\t".join(COLUMNS) + "\n"
    with open(hits_out, "w", encoding="ascii") as fh:
        fh.write(header + "".join("\t".join(r) + "\n" for r in rows))
    with open(best_out, "w", encoding="ascii") as fh:
        fh.write(header + "".join("\t".join(best[q]) + "\n" for q in sorted(best)))
    print(f"{len(rows)} hits from {len(chunks)} chunks, {len(best)} queries with a hit")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
