"""Results where users look: publishing a run's outputs (`--outdir`, the workflow's `publish`),
and deleting runs (`updraft runs rm`, `runs gc`)."""
