"""The benchmark's workloads: the synthetic shapes of `scripts/bench-overhead` (same generators,
same seed) and the BLAST and Montage examples, each as a native Updraft workflow document.

The floor for a synthetic shape is `scripts/bench-overhead`'s: the same `true` commands run
level by level with `xargs -P <cores>`.
"""

from __future__ import annotations

import json
import random
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any


def fan(n: int) -> list[dict]:
    return [{"id": f"t{i}", "command": ["true"]} for i in range(n)]


def chain(n: int) -> list[dict]:
    return [{"id": f"t{i}", "command": ["true"], **({"after": [f"t{i - 1}"]} if i else {})} for i in range(n)]


def layered(levels: int, width: int, parents: int = 3, seed: int = 1) -> list[dict]:
    rng = random.Random(seed)
    tasks = []
    for lv in range(levels):
        for w in range(width):
            after = [f"l{lv - 1}_{p}" for p in rng.sample(range(width), parents)] if lv else []
            tasks.append({"id": f"l{lv}_{w}", "command": ["true"], "after": after})
    return tasks


def level_sizes(tasks: list[dict]) -> list[int]:
    level: dict[str, int] = {}
    for t in tasks:  # tasks are listed parents first
        level[t["id"]] = 1 + max((level[a] for a in t.get("after", [])), default=-1)
    sizes: dict[int, int] = {}
    for lv in level.values():
        sizes[lv] = sizes.get(lv, 0) + 1
    return [sizes[k] for k in sorted(sizes)]


def floor_cmd(tasks: list[dict], parallel: int) -> list[str]:
    """A shell pipeline running the same commands level by level with xargs -P (bench-overhead's
    floor, kept equal to it by tests/unit/test_bench_peers.py; touches write o<N> into a scratch
    folder, removed afterwards)."""
    sizes = level_sizes(tasks)
    touch = tasks[0]["command"][0] == "touch"
    cmd = "touch o{}" if touch else "true"
    if max(sizes) == 1:  # a chain: one sequential xargs over every command, in order
        parts = [f"seq {len(tasks)} | xargs -P 1 -I{{}} {cmd}"]
    else:
        start, parts = 0, []
        for n in sizes:
            parts.append(f"seq {start} {start + n - 1} | xargs -P {parallel} -I{{}} {cmd}")
            start += n
    if touch:
        parts = ['d=$(mktemp -d)', 'cd "$d"', *parts, 'cd /', 'rm -rf "$d"']
    return ["/bin/sh", "-c", "\n".join(parts)]


@dataclass(frozen=True)
class Workload:
    """A workflow document and, for the examples, the data folder its inputs are read from."""

    name: str
    label: str
    doc: dict[str, Any]
    data: Path | None = None

    @property
    def synthetic(self) -> bool:
        return self.data is None

    @property
    def tasks(self) -> int:
        return len(self.doc["tasks"])


def synthetic(name: str, label: str, tasks: list[dict]) -> Workload:
    return Workload(name, label, {"format": "updraft/v1", "name": name, "tasks": tasks})


def synthetic_workloads(quick: bool) -> list[Workload]:
    if quick:
        return [synthetic("fan-200", "200 independent", fan(200)), synthetic("chain-30", "chain of 30", chain(30)),
                synthetic("dag-5x40", "5 x 40 DAG", layered(5, 40))]
    return [synthetic("fan-2000", "2,000 independent", fan(2000)),
            synthetic("chain-300", "chain of 300", chain(300)),
            synthetic("dag-20x100", "20 x 100 DAG", layered(20, 100))]


def example(kind: str, out: Path, repo: Path, quick: bool) -> Workload:
    """Generate the BLAST or Montage example into `out` (skipped when it is already there)."""
    if kind == "blast":
        args = ["--sequences", "200", "--queries", "40", "--chunks", "4"] if quick else []
        module, name, label = "examples.blast.generate", "blast", "BLAST" + (" (small)" if quick else "")
    elif kind == "montage":
        args = ["--degrees", "0.2" if quick else "0.5"]
        module, name, label = "examples.montage.generate", "montage", "Montage " + ("0.2" if quick else "0.5") + " deg"
    else:
        raise ValueError(f"unknown example {kind!r}")
    wf = out / "workflow.json"
    stamp = out / "args.json"
    if not (wf.exists() and stamp.exists() and json.loads(stamp.read_text()) == args):
        subprocess.run([sys.executable, "-m", module, "--out", str(out), *args], cwd=repo, check=True,
                       stdout=subprocess.DEVNULL)
        stamp.write_text(json.dumps(args))
    return Workload(name, label, json.loads(wf.read_text()), out / "data")
