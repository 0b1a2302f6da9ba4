"""Generate the BLAST workflow with a synthetic database and planted queries.

    python -m examples.blast.generate --out DIR [--sequences 1000 --length 2000 --queries 200 --chunks 8]
    updraft run DIR/workflow.json --data DIR/data

Writes DIR/workflow.json, DIR/data/ (db.fasta, queries.fasta, tools/) and DIR/truth/expected.tsv
(query -> the database sequence it was cut from, '-' for decoys). Needs Debian's `ncbi-blast+`
to run the workflow, not to generate it. Same arguments and seed, same files.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import sys
from pathlib import Path

from examples.blast import dag, synth
from examples.toolcheck import install_hint, missing_tools

TOOLS_DIR = Path(__file__).with_name("tools")
HELPERS = ("split_fasta.py", "merge_hits.py")
WORKFLOW_TOOLS = ("makeblastdb", "blastn")


def generate(out: str, sequences: int = 1000, length: int = 2000, queries: int = 200, decoys: int | None = None,
             chunks: int = 8, seed: int = 1) -> dict[str, object]:
    if sequences < 1 or length < 200 or queries < 1 or chunks < 1:
        raise ValueError("need sequences >= 1, length >= 200, queries >= 1, chunks >= 1")
    rng = random.Random(seed)
    database = synth.make_database(rng, sequences, length)
    n_decoys = max(1, queries // 10) if decoys is None else decoys
    planted = synth.plant_queries(rng, database, queries, n_decoys)
    data, truth = os.path.join(out, "data"), os.path.join(out, "truth")
    os.makedirs(os.path.join(data, "tools"), exist_ok=True)
    os.makedirs(truth, exist_ok=True)
    _write(os.path.join(data, "db.fasta"), synth.fasta(sorted(database.items())))
    _write(os.path.join(data, "queries.fasta"), synth.fasta([(q.id, q.sequence) for q in planted]))
    for helper in HELPERS:
        shutil.copyfile(TOOLS_DIR / helper, os.path.join(data, "tools", helper))
    _write(os.path.join(truth, "expected.tsv"), "#query\tsource\tstart\tstrand\n" + "".join(
        f"{q.id}\t{q.source or '-'}\t{q.start}\t{q.strand}\n" for q in sorted(planted, key=lambda q: q.id)
    ))
    workflow = dag.build(
        f"blast-{sequences}x{length}-{len(planted)}q", chunks,
        f"blastn of {len(planted)} queries ({n_decoys} decoys) against {sequences} synthetic sequences "
        f"in {chunks} chunks (seed {seed})",
    )
    path = os.path.join(out, "workflow.json")
    with open(path, "w", encoding="utf-8") as fh:
        json.dump(workflow, fh, indent=1)
        fh.write("\n")
    return {
        "workflow": path, "data": data, "sequences": sequences, "queries": len(planted),
        "decoys": n_decoys, "chunks": chunks, "tasks": len(workflow["tasks"]), "best_hits": dag.BEST,
    }


def _write(path: str, text: str) -> None:
    with open(path, "w", encoding="ascii") as fh:
        fh.write(text)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m examples.blast.generate", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sequences", type=int, default=1000, help="database sequences (default 1000)")
    parser.add_argument("--length", type=int, default=2000, help="mean sequence length (default 2000)")
    parser.add_argument("--queries", type=int, default=200, help="planted queries (default 200)")
    parser.add_argument("--decoys", type=int, default=None, help="random queries that should not hit "
                        "(default: a tenth of --queries, at least 1)")
    parser.add_argument("--chunks", type=int, default=8, help="blastn tasks (default 8)")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--out", required=True)
    args = parser.parse_args(argv)
    try:
        summary = generate(args.out, args.sequences, args.length, args.queries, args.decoys, args.chunks, args.seed)
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    missing = missing_tools(WORKFLOW_TOOLS)
    if missing:
        print(f"note: {', '.join(missing)} not found; to run the workflow install them: "
              f"{install_hint(missing)}", file=sys.stderr)
    print(json.dumps(summary))
    return 0


if __name__ == "__main__":
    sys.exit(main())
