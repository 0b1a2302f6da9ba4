"""Compare a BLAST run's best hits with the generator's truth: every planted query must find
its source sequence on the right strand, and no decoy may hit anything."""

from __future__ import annotations

import os


def read_table(path: str) -> list[list[str]]:
    with open(path, encoding="ascii") as fh:
        return [line.rstrip("\n").split("\t") for line in fh if line.strip() and not line.startswith("#")]


def problems(out: str, best_hits: str) -> list[str]:
    """Every disagreement between `best_hits` (merge's BEST.tsv) and out/truth/expected.tsv."""
    expected = {row[0]: row for row in read_table(os.path.join(out, "truth", "expected.tsv"))}
    best = {row[0]: row for row in read_table(best_hits)}
    found: list[str] = []
    for query, (_, source, _start, strand) in sorted(expected.items()):
        hit = best.get(query)
        if source == "-":
            if hit is not None:
                found.append(f"decoy {query} hit {hit[1]} (evalue {hit[4]})")
        elif hit is None:
            found.append(f"{query} (from {source}) found nothing")
        elif hit[1] != source or hit[6] != strand:
            found.append(f"{query} (from {source}, {strand}) best hit {hit[1]} on {hit[6]}")
    found.extend(f"unknown query {q} in the results" for q in sorted(set(best) - set(expected)))
    return found
