"""BLAST example: a synthetic nucleotide database, planted queries, split -> blastn -> merge."""
