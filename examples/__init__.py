"""Real workflows with their deterministic data generators (Montage, BLAST, ...)."""
