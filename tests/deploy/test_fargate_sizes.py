"""WorkerCpu/WorkerMemory: only pairs Fargate runs. The template's AllowedValues and Rules are
the table of infra/fargate.py, and scripts/bootstrap refuses a bad pair in one line before it
touches the stack."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from infra import fargate
from infra.bootstrap import bootstrap
from infra.cfn import Stacks
from infra.errors import DeployError
from infra.names import TEMPLATE, stack_name
from tests.deploy import templates


@pytest.fixture(scope="module")
def template() -> dict[str, Any]:
    return templates.load(TEMPLATE)


def test_template_rules_are_the_fargate_table(template: dict[str, Any]) -> None:
    params = template["Parameters"]
    assert params["WorkerCpu"]["AllowedValues"] == [str(c) for c in fargate.MEMORY_FOR_CPU]
    assert params["WorkerMemory"]["AllowedValues"] == [str(m) for m in fargate.all_memory_sizes()]
    assert (params["WorkerCpu"]["Default"], params["WorkerMemory"]["Default"]) == (
        fargate.DEFAULT_CPU, fargate.DEFAULT_MEMORY)
    found = {}
    for rule in template["Rules"].values():
        (left, right), = rule["RuleCondition"].values()
        assert left == {"Ref": "WorkerCpu"}
        (assertion,) = rule["Assertions"]
        allowed, memory = assertion["Assert"]["Fn::Contains"]
        assert memory == {"Ref": "WorkerMemory"}
        assert fargate.describe(int(right)) in assertion["AssertDescription"]
        found[int(right)] = tuple(int(m) for m in allowed)
    assert found == fargate.MEMORY_FOR_CPU


def test_the_default_pair_is_valid() -> None:
    fargate.check_size(fargate.DEFAULT_CPU, fargate.DEFAULT_MEMORY)


@pytest.mark.parametrize(("cpu", "memory", "why"), [
    ("256", "4096", "with 256 CPU units WorkerMemory must be 512, 1024 or 2048 MiB"),
    ("1024", "16384", "2048 to 8192 MiB in steps of 1024"),
    ("8192", "18432", "16384 to 61440 MiB in steps of 4096"),
    ("3000", "4096", "WorkerCpu=3000 is not a Fargate size"),
    ("1024", "4G", "must be whole numbers"),
])
def test_bad_pairs_get_one_line_naming_the_fix(cpu: str, memory: str, why: str) -> None:
    with pytest.raises(DeployError) as caught:
        fargate.check_size(cpu, memory)
    assert why in str(caught.value) and "\n" not in str(caught.value)


def test_bootstrap_refuses_a_bad_pair_before_touching_the_stack(aws: Any, stacks: Stacks, config_path: Path) -> None:
    with pytest.raises(DeployError, match="Fargate does not run WorkerCpu=256 with WorkerMemory=4096"):
        bootstrap("ci", aws, {"WorkerCpu": "256"}, config_path, say=lambda line: None, stacks=stacks)
    assert stacks.status(stack_name("ci")) is None and not config_path.exists()


def test_bootstrap_checks_the_pair_with_the_stacks_previous_values(aws: Any, stacks: Stacks,
                                                                   config_path: Path) -> None:
    bootstrap("ci", aws, {"WorkerCpu": "4096", "WorkerMemory": "16384"}, config_path, say=lambda line: None,
              stacks=stacks)
    # WorkerMemory keeps 16384, which 1024 CPU units cannot have
    with pytest.raises(DeployError, match="WorkerCpu=1024 with WorkerMemory=16384"):
        bootstrap("ci", aws, {"WorkerCpu": "1024"}, config_path, say=lambda line: None, stacks=stacks)
