"""How close corrected long reads are to the error-free sequences they were sampled from."""

from __future__ import annotations

from examples.blast.tools.split_fasta import read_fasta


def banded_distance(a: str, b: str, band: int = 100) -> int:
    """Edit distance between a and b, searched within `band` of the diagonal (exact when the
    best alignment stays inside it, larger otherwise)."""
    n, m = len(a), len(b)
    inf = n + m + 1
    prev = [j if j <= band else inf for j in range(m + 1)]
    for i in range(1, n + 1):
        centre = i * m // n
        lo, hi = max(0, centre - band), min(m, centre + band)
        cur = [inf] * (m + 1)
        if lo == 0:
            cur[0] = i
        ai = a[i - 1]
        for j in range(max(1, lo), hi + 1):
            cur[j] = min(prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + (ai != b[j - 1]))
        prev = cur
    return prev[m]


def error_rates(reads_fa: str, sources_fa: str, band: int = 64) -> dict[str, float]:
    """Edit distance / source length for each read that has a source (missing reads: 1.0)."""
    reads = dict(read_fasta(reads_fa))
    rates: dict[str, float] = {}
    for name, source in read_fasta(sources_fa):
        read = reads.get(name)
        rates[name] = 1.0 if read is None else banded_distance(read, source, band) / len(source)
    return rates
