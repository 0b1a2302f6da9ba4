"""The table's warm throughput follows the stage's advertised completion rate: the computation,
the refusal of a bad setting, and bootstrap creating the table warm in moto's CloudFormation."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from infra import warm_throughput
from infra.bootstrap import bootstrap
from infra.cfn import Stacks
from infra.errors import DeployError
from infra.names import CHALICE_CONFIG, TEMPLATE, stack_name
from tests.deploy import conftest, templates

STAGE = "ci"


def write_config(path: Path, rate: str | None) -> None:
    env = {} if rate is None else {warm_throughput.SETTING: rate}
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"version": "2.0", "app_name": "updraft",
                                "stages": {STAGE: {"environment_variables": env}}}))


def table_warm(aws: Any) -> dict[str, Any]:
    described = aws.client("dynamodb").describe_table(TableName=f"updraft-{STAGE}")["Table"]
    return dict(described["WarmThroughput"])


def stack_param(aws: Any) -> str:
    stack = aws.client("cloudformation").describe_stacks(StackName=stack_name(STAGE))["Stacks"][0]
    return str({p["ParameterKey"]: p["ParameterValue"] for p in stack["Parameters"]}[warm_throughput.PARAMETER])


def test_units_are_the_measured_cost_per_completion_with_headroom() -> None:
    # 1,000/s x 5.90 x 1.25 = 7,375: above the 7,328 the benchmark's busiest second needed
    assert warm_throughput.write_units(1000) == 7375
    assert warm_throughput.write_units(1000) >= 7328
    assert warm_throughput.write_units(1) == 8  # 7.375, rounded up
    assert warm_throughput.warm_write_units(2000) == 14750


def test_a_rate_a_new_table_already_takes_asks_for_nothing() -> None:
    # 542/s needs 3,997.25 units: under the 4,000 of a new on-demand table, so nothing is billed
    assert warm_throughput.warm_write_units(542) == 0
    assert warm_throughput.warm_write_units(543) == 4005


def test_the_stack_value_never_goes_down() -> None:
    assert warm_throughput.stack_value(1000, {}) == "7375"
    assert warm_throughput.stack_value(None, {}) == "0"
    assert warm_throughput.stack_value(500, {warm_throughput.PARAMETER: "7375"}) == "7375"
    assert warm_throughput.stack_value(2000, {warm_throughput.PARAMETER: "7375"}) == "14750"


@pytest.mark.parametrize("bad", ["fast", "0", "-5", "1.5", "1e3"])
def test_a_bad_setting_is_refused_naming_it(bad: str) -> None:
    config = {"stages": {STAGE: {"environment_variables": {warm_throughput.SETTING: bad}}}}
    with pytest.raises(DeployError) as caught:
        warm_throughput.stage_rate(config, STAGE)
    assert warm_throughput.SETTING in str(caught.value)
    assert repr(bad) in str(caught.value) and f"stage {STAGE!r}" in str(caught.value)


def test_the_stage_overrides_the_top_level_setting() -> None:
    config = {"environment_variables": {warm_throughput.SETTING: "100"},
              "stages": {STAGE: {"environment_variables": {warm_throughput.SETTING: "900"}}, "other": {}}}
    assert warm_throughput.stage_rate(config, STAGE) == 900
    assert warm_throughput.stage_rate(config, "other") == 100
    assert warm_throughput.stage_rate({}, STAGE) is None


def test_the_shipped_stages_rates() -> None:
    config = json.loads(CHALICE_CONFIG.read_text())
    assert warm_throughput.stage_rate(config, "prod") == 1000
    assert warm_throughput.warm_write_units(warm_throughput.stage_rate(config, "prod") or 0) == 7375
    assert warm_throughput.warm_write_units(warm_throughput.stage_rate(config, "dev") or 0) == 0


def test_the_template_sets_the_table_warm_only_when_asked() -> None:
    template = templates.load(TEMPLATE)
    table = template["Resources"]["Table"]["Properties"]
    assert table["BillingMode"] == "PAY_PER_REQUEST"
    assert table["WarmThroughput"] == {"Fn::If": ["TableWarmed", {"WriteUnitsPerSecond": {
        "Ref": warm_throughput.PARAMETER}}, {"Ref": "AWS::NoValue"}]}
    assert template["Parameters"][warm_throughput.PARAMETER]["Default"] == 0


def test_bootstrap_creates_the_table_warm_for_the_advertised_rate(aws: Any, stacks: Stacks, config_path: Path) -> None:
    write_config(config_path, "1000")
    conftest.run_bootstrap(aws, stacks, config_path, STAGE)
    assert stack_param(aws) == "7375"
    assert int(table_warm(aws)["WriteUnitsPerSecond"]) == 7375


def test_without_a_rate_the_table_keeps_a_new_tables_warm_throughput(aws: Any, stacks: Stacks,
                                                                      config_path: Path) -> None:
    write_config(config_path, None)
    conftest.run_bootstrap(aws, stacks, config_path, STAGE)
    assert stack_param(aws) == "0"
    # the template leaves WarmThroughput out: moto then reports 0 for an on-demand table made by
    # CloudFormation (AWS reports a new table's 4,000); either way the table is not pre-warmed
    assert int(table_warm(aws)["WriteUnitsPerSecond"]) <= warm_throughput.NEW_TABLE_WRITE_UNITS


def test_a_lower_rate_later_keeps_the_warm_throughput(aws: Any, stacks: Stacks, config_path: Path) -> None:
    write_config(config_path, "1000")
    conftest.run_bootstrap(aws, stacks, config_path, STAGE)
    write_config(config_path, "100")
    said: list[str] = []
    bootstrap(STAGE, aws, {}, config_path, say=said.append, stacks=stacks)
    assert stack_param(aws) == "7375"
    assert any("cannot be lowered" in line for line in said)


def test_bootstrap_refuses_a_bad_rate_before_touching_the_stack(aws: Any, stacks: Stacks, config_path: Path) -> None:
    write_config(config_path, "lots")
    with pytest.raises(DeployError, match=warm_throughput.SETTING):
        conftest.run_bootstrap(aws, stacks, config_path, STAGE)
    assert aws.client("cloudformation").list_stacks()["StackSummaries"] == []
