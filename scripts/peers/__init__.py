"""Adapters for `scripts/bench-peers`: the same workflow written for each peer engine.

`translate` turns a native Updraft workflow into engine-neutral tasks; each engine module
(makeflow, snakemake, parsl, dask, updraft) writes its own program for them and says how to
run it. Nothing here imports a peer: the programs run in the benchmark's own environment.
"""
