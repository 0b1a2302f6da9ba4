"""HECIL-shaped example: hybrid error correction of long reads with short reads (bwa + samtools)."""
