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
