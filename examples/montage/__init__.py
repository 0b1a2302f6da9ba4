"""Montage mosaic example: synthetic sky tiles made with Montage's own tools, and the classic DAG."""
