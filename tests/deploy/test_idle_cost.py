"""The idle cost docs/deploy.md states is the one infra/idle_cost.py computes, from the
stage as configured (sweeper memory and period, endpoint AZs)."""

from __future__ import annotations

import json

from chalicelib.backends.aws.config import AwsConfig
from infra.idle_cost import Idle, monthly, total
from infra.names import CHALICE_CONFIG, REPO, TEMPLATE
from tests.deploy import templates


def test_idle_model_matches_the_deployed_configuration() -> None:
    idle = Idle()
    config = json.loads(CHALICE_CONFIG.read_text())
    assert idle.sweeper_mb == config["lambda_functions"]["sweeper"]["lambda_memory_size"]
    assert idle.sweep_minutes == AwsConfig().sweep_minutes
    endpoint = templates.load(TEMPLATE)["Resources"]["SqsInterfaceEndpoint"]["Properties"]
    assert idle.endpoint_azs == len(endpoint["SubnetIds"])


def test_only_the_endpoint_depends_on_the_efs_switch() -> None:
    inside, outside = dict(monthly(Idle())), dict(monthly(Idle(task_function_in_vpc=False)))
    differs = {item for item in inside if inside[item] != outside[item]}
    assert len(differs) == 1 and "endpoint" in differs.pop()
    assert total(Idle(task_function_in_vpc=False)) < 1.0  # near zero without the endpoint


def test_docs_quote_the_computed_totals() -> None:
    text = (REPO / "docs" / "deploy.md").read_text()
    for idle in (Idle(), Idle(task_function_in_vpc=False)):
        assert f"**${total(idle):.2f}**" in text
