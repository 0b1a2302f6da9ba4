"""Draw docs/img/bench-peers.png from a results file: tasks/s on the synthetic workloads (log
scale), wall time on BLAST and Montage. Runs in the benchmark's environment (matplotlib).

    python chart.py RESULTS.json OUT.png
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from report import summarize


def main(argv: list[str]) -> int:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    results = json.loads(Path(argv[0]).read_text())
    rows = [r for r in summarize(results) if "wall_s" in r]
    engines = [e for e in results["engines"] if any(r["engine"] == e["name"] for r in rows)]
    colors = {e["name"]: plt.get_cmap("tab10")(i) for i, e in enumerate(engines)}
    synthetic = [w for w in results["workloads"] if w["synthetic"]]
    examples = [w for w in results["workloads"] if not w["synthetic"]]
    fig, axes = plt.subplots(1, 2, figsize=(13, 5), gridspec_kw={"width_ratios": [3, 2]})
    for ax, wls, key, ylabel, log in ((axes[0], synthetic, "tasks_per_s", "tasks per second (higher is better)", True),
                                      (axes[1], examples, "wall_s", "wall time, s (lower is better)", False)):
        present = [e for e in engines if any(r["engine"] == e["name"] and r["workload"] in {w["name"] for w in wls}
                                             for r in rows)]
        width = 0.8 / max(1, len(present))
        for i, e in enumerate(present):
            xs, ys, lo, hi = [], [], [], []
            for j, w in enumerate(wls):
                row = next((r for r in rows if r["engine"] == e["name"] and r["workload"] == w["name"]), None)
                if row:
                    xs.append(j + (i - (len(present) - 1) / 2) * width)
                    ys.append(row[key])
                    spread = [w["tasks"] / s for s in row["walls"]] if key == "tasks_per_s" else row["walls"]
                    lo.append(row[key] - min(spread))
                    hi.append(max(spread) - row[key])
            ax.bar(xs, ys, width, label=e["label"], color=colors[e["name"]], yerr=[lo, hi],
                   error_kw={"elinewidth": 0.8, "capsize": 2, "ecolor": "0.25"})
        ax.set_xticks(range(len(wls)), [f"{w['label']}\n({w['tasks']} tasks)" for w in wls])
        ax.set_ylabel(ylabel)
        if log:
            ax.set_yscale("log")
        ax.grid(axis="y", alpha=0.3)
    axes[0].legend(fontsize=8, loc="upper right")
    axes[1].legend(fontsize=8, loc="upper left")
    fig.suptitle(f"Updraft and peers, {results['date']}, {results['cores']} cores, median of {results['repeat']} "
                 f"runs (bars), fastest and slowest run (whiskers)"
                 f"{'; taken under load' if results['load'].get('loaded') else ''}")
    fig.tight_layout()
    fig.savefig(argv[1], dpi=110)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
