"""What the functions import is what `chalice deploy` ships (requirements.txt)."""

from __future__ import annotations

from pathlib import Path

import pytest

from infra import preflight
from infra.errors import DeployError


def test_requirements_list_every_third_party_import_of_the_functions() -> None:
    assert preflight.missing_requirements() == []


def test_a_missing_requirement_is_named(tmp_path: Path) -> None:
    (tmp_path / "chalicelib").mkdir()
    (tmp_path / "chalicelib" / "obs.py").write_text("import json\nfrom aws_lambda_powertools import Logger\n")
    (tmp_path / "app.py").write_text("from chalice import Chalice\nimport chalicelib.obs\nimport boto3\n")
    assert preflight.missing_requirements(tmp_path) == ["aws-lambda-powertools"]
    with pytest.raises(DeployError, match="aws-lambda-powertools"):
        preflight.check(tmp_path)
    (tmp_path / "requirements.txt").write_text("# ours\nAWS_Lambda_Powertools[tracer]>=2.30 ; python_version>'3'\n")
    assert preflight.missing_requirements(tmp_path) == []


def test_the_functions_and_the_worker_do_not_import_the_cli_display() -> None:
    """rich (the CLI's terminal display) is a CLI dependency only: loading the Chalice app
    (every function's entry point) or the Fargate worker imports neither rich nor the display."""
    import subprocess
    import sys

    from infra.names import REPO

    probe = ("import sys, app, workers.worker; "
             "print(sorted(m for m in sys.modules if m == 'rich' or m.startswith(('rich.', 'chalicelib.ui.display', "
             "'chalicelib.ui.progress'))))")
    out = subprocess.run([sys.executable, "-c", probe], cwd=REPO, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "[]"
    assert "rich" in preflight.NOT_IN_FUNCTIONS  # and so requirements.txt need not list it
