"""bandit over the code that ships (`bandit -q -r chalicelib app.py workers -ll`): no finding
of medium severity or above except the justified ones below, each with its reason. A new
finding fails: fix it, or put `# nosec <id>` and the reason on its line (the owners of the
files below may do that too; their entries here then simply go unused).

ruff's S rules (the same checks, flake8-bandit) run over the whole tree in scripts/test.
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections import Counter
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]

# (file, bandit test id) -> (how many, why it is not a problem)
JUSTIFIED: dict[tuple[str, str], tuple[int, str]] = {
    ("chalicelib/backends/local/sqlite_state.py", "B608"): (
        10, "SQL text is built from fixed column names and '?' placeholders only; every value is bound"),
    ("chalicelib/backends/aws/config.py", "B108"): (
        1, "/tmp is the only writable place in Lambda; each attempt gets a fresh folder under it, in a "
           "single-tenant function or container"),
    ("workers/heartbeat.py", "B310"): (
        1, "urlopen of the ECS agent's task-metadata endpoint (ECS_CONTAINER_METADATA_URI_V4, set by ECS)"),
    ("chalicelib/workflow/formats/hyperflow.py", "B604"): (1, "`shell=` is a field of the Task record"),
    ("chalicelib/workflow/formats/makeflow_rules.py", "B604"): (1, "`shell=` is a field of the Task record"),
    ("chalicelib/workflow/formats/native.py", "B604"): (1, "`shell=` is a field of the Task record"),
    ("chalicelib/workflow/formats/wfformat.py", "B604"): (1, "`shell=` is a field of the Task record"),
}


def bandit_findings() -> Counter[tuple[str, str]]:
    proc = subprocess.run(
        [sys.executable, "-m", "bandit", "-q", "-r", "chalicelib", "app.py", "workers", "-ll", "-f", "json"],
        cwd=REPO, capture_output=True, text=True, timeout=300, check=False,
    )
    assert "No module named bandit" not in proc.stderr, "bandit is in the test extras: pip install -e '.[test]'"
    report = json.loads(proc.stdout)
    assert not report["errors"], report["errors"]
    return Counter((r["filename"].removeprefix("./"), r["test_id"]) for r in report["results"])


def test_bandit_finds_nothing_unjustified() -> None:
    found = bandit_findings()
    unjustified = {k: n for k, n in found.items() if n > JUSTIFIED.get(k, (0, ""))[0]}
    assert unjustified == {}, f"new bandit findings (fix, or `# nosec <id>` with a reason): {unjustified}"
