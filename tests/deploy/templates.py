"""Reading and linting CloudFormation templates in the tests (cfn-lint's own parser)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

LINT_REGIONS = ["us-east-1", "eu-west-1", "ap-southeast-2"]


def load(path: Path) -> dict[str, Any]:
    """The template with short-form tags (!Ref, !Sub) turned into their long form."""
    from cfnlint.decode import decode

    template, problems = decode(str(path))
    assert not problems, [str(p) for p in problems]
    assert template is not None
    return dict(template)


def lint(text: str) -> list[str]:
    """cfn-lint's findings, informational checks included; [] means clean."""
    from cfnlint.api import ManualArgs
    from cfnlint.api import lint as run_lint

    matches = run_lint(text, config=ManualArgs(include_checks=["I"], regions=LINT_REGIONS))
    return [f"{m.rule.id} {m.message} (line {m.linenumber})" for m in matches]
