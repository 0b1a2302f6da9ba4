"""Generate the HECIL-shaped workflow: a synthetic genome, error-prone long reads tiling it,
and accurate short reads sampled from it.

    python -m examples.hecil.generate --out DIR [--genome-kb 36 --long-kb 3 --coverage 40 --chunks 4 --parts 4]
    updraft run DIR/workflow.json --data DIR/data

Long reads carry 3 percent substitutions and 3 percent short indels (PacBio-like); short
reads (150 bases) 0.5 percent substitutions, on either strand. DIR/truth/sources.fa holds
each long read's error-free sequence. Needs Debian's `bwa` and `samtools` to run.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import sys
from pathlib import Path

from examples.blast.synth import fasta, mutate, random_sequence, reverse_complement
from examples.hecil import dag
from examples.toolcheck import install_hint, missing_tools

SPLIT_TOOL = Path(__file__).parents[1] / "blast" / "tools" / "split_fasta.py"
WORKFLOW_TOOLS = ("bwa", "samtools")
SHORT_LEN = 150


def generate(out: str, genome_kb: int = 36, long_kb: int = 3, coverage: int = 40, chunks: int = 4,
             parts: int = 4, seed: int = 1) -> dict[str, object]:
    if genome_kb < long_kb or long_kb < 1 or coverage < 5 or chunks < 1 or parts < 1:
        raise ValueError("need genome_kb >= long_kb >= 1, coverage >= 5, chunks >= 1, parts >= 1")
    rng = random.Random(seed)
    genome = random_sequence(rng, genome_kb * 1000)
    step = long_kb * 1000
    sources = [(f"long{i:03d}", genome[s:s + step]) for i, s in enumerate(range(0, len(genome) - step + 1, step))]
    longs = [(name, mutate(rng, seq, 0.03, 0.03)) for name, seq in sources]
    shorts = []
    for i in range(len(genome) * coverage // SHORT_LEN):
        start = rng.randint(0, len(genome) - SHORT_LEN)
        read = mutate(rng, genome[start:start + SHORT_LEN], 0.005, 0.0)
        shorts.append((f"short{i:06d}", reverse_complement(read) if rng.random() < 0.5 else read))
    data, truth = os.path.join(out, "data"), os.path.join(out, "truth")
    os.makedirs(os.path.join(data, "tools"), exist_ok=True)
    os.makedirs(truth, exist_ok=True)
    _write(os.path.join(data, dag.LONG), fasta(longs))
    _write(os.path.join(data, dag.SHORT), fasta(shorts))
    _write(os.path.join(truth, "sources.fa"), fasta(sources))
    shutil.copyfile(SPLIT_TOOL, os.path.join(data, "tools", "split_fasta.py"))
    workflow = dag.build(
        f"hecil-{genome_kb}kb", [name for name, _ in longs], chunks, parts,
        f"correct {len(longs)} long reads with {len(shorts)} short reads ({coverage}x) in {chunks} "
        f"mapping chunks and {min(parts, len(longs))} correction partitions (seed {seed})",
    )
    path = os.path.join(out, "workflow.json")
    with open(path, "w", encoding="utf-8") as fh:
        json.dump(workflow, fh, indent=1)
        fh.write("\n")
    return {"workflow": path, "data": data, "long_reads": len(longs), "short_reads": len(shorts),
            "tasks": len(workflow["tasks"]), "corrected": dag.CORRECTED}


def _write(path: str, text: str) -> None:
    with open(path, "w", encoding="ascii") as fh:
        fh.write(text)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m examples.hecil.generate", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--genome-kb", type=int, default=36)
    parser.add_argument("--long-kb", type=int, default=3, help="long read length in kb (reads tile the genome)")
    parser.add_argument("--coverage", type=int, default=40, help="short read coverage of the genome")
    parser.add_argument("--chunks", type=int, default=4, help="bwa mem tasks")
    parser.add_argument("--parts", type=int, default=4, help="correction tasks")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--out", required=True)
    args = parser.parse_args(argv)
    try:
        summary = generate(args.out, args.genome_kb, args.long_kb, args.coverage, args.chunks, args.parts, args.seed)
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    missing = missing_tools(WORKFLOW_TOOLS)
    if missing:
        print(f"note: {', '.join(missing)} not found; to run the workflow install them: {install_hint(missing)}",
              file=sys.stderr)
    print(json.dumps(summary))
    return 0


if __name__ == "__main__":
    sys.exit(main())
