"""A deterministic synthetic nucleotide database and planted queries, in the standard library.

Each planted query is a stretch of one database sequence, mutated (substitutions and short
indels) and on either strand, so its expected best hit is known. Decoys are fresh random
sequence and should hit nothing.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

BASES = "ACGT"
_COMPLEMENT = str.maketrans("ACGT", "TGCA")


@dataclass(frozen=True)
class Query:
    id: str
    sequence: str
    source: str | None  # the database sequence it was cut from; None for a decoy
    start: int = 0
    strand: str = "plus"


def random_sequence(rng: random.Random, length: int) -> str:
    return "".join(rng.choice(BASES) for _ in range(length))


def reverse_complement(seq: str) -> str:
    return seq.translate(_COMPLEMENT)[::-1]


def mutate(rng: random.Random, seq: str, substitution: float, indel: float) -> str:
    """Point substitutions at rate `substitution`, 1-3 base insertions or deletions at rate `indel`."""
    out: list[str] = []
    i = 0
    while i < len(seq):
        roll = rng.random()
        if roll < indel / 2:  # deletion
            i += rng.randint(1, 3)
            continue
        if roll < indel:  # insertion before this base
            out.append(random_sequence(rng, rng.randint(1, 3)))
        base = seq[i]
        if rng.random() < substitution:
            base = rng.choice([b for b in BASES if b != base])
        out.append(base)
        i += 1
    return "".join(out)


def make_database(rng: random.Random, count: int, length: int) -> dict[str, str]:
    """`count` sequences of about `length` bases (within 25 percent), ids seq0001..."""
    lo, hi = max(50, int(length * 0.75)), int(length * 1.25)
    return {f"seq{i + 1:04d}": random_sequence(rng, rng.randint(lo, hi)) for i in range(count)}


def plant_queries(rng: random.Random, database: dict[str, str], count: int, decoys: int,
                  substitution: float = 0.05, indel: float = 0.01) -> list[Query]:
    """`count` queries cut from random database sequences plus `decoys` unrelated ones, shuffled."""
    ids = sorted(database)
    queries: list[Query] = []
    for i in range(count):
        source = rng.choice(ids)
        seq = database[source]
        length = rng.randint(min(150, len(seq)), min(400, len(seq)))
        start = rng.randint(0, len(seq) - length)
        piece = mutate(rng, seq[start:start + length], substitution, indel)
        strand = rng.choice(("plus", "minus"))
        if strand == "minus":
            piece = reverse_complement(piece)
        queries.append(Query(f"q{i + 1:04d}", piece, source, start, strand))
    for i in range(decoys):
        queries.append(Query(f"decoy{i + 1:03d}", random_sequence(rng, rng.randint(150, 400)), None))
    rng.shuffle(queries)
    return queries


def fasta(records: list[tuple[str, str]], width: int = 70) -> str:
    lines: list[str] = []
    for header, seq in records:
        lines.append(f">{header}")
        lines.extend(seq[i:i + width] for i in range(0, len(seq), width))
    return "\n".join(lines) + "\n"
