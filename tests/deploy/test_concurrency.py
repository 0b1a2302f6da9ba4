"""Concurrency isolation (docs/aws.md, "Concurrency"): every function of every stage has
reserved concurrency, the coordinator's trigger never invokes more coordinators than the
stage reserves for it, the reservations of all stages fit one account's default quota, and
the events queue's visibility and receive count leave room for throttled redeliveries."""

from __future__ import annotations

import json
from typing import Any

import pytest
from chalice.config import Config

from chalicelib.backends.aws import wiring
from chalicelib.backends.aws.config import AwsConfig
from chalicelib.backends.aws.coordinator_function import DEAD_LETTER_AFTER
from chalicelib.backends.aws.iam_policy import stage_env
from infra import postdeploy
from infra.chalice_config import task_functions
from infra.names import CHALICE_CONFIG, TEMPLATE
from tests.deploy import templates

STAGES = ["dev", "prod"]
CONTROL = ("api_handler", "coordinator", "submit", "sweeper")
ACCOUNT_QUOTA = 1000  # an account's default concurrent executions per region (Lambda quotas)
UNRESERVED_MIN = 100  # Lambda keeps this much unreserved; a reservation beyond it is refused


def config() -> dict[str, Any]:
    data: dict[str, Any] = json.loads(CHALICE_CONFIG.read_text())
    return data


def reserved(stage: str) -> dict[str, int]:
    data = config()
    chalice = Config(chalice_stage=stage, config_from_disk=data)
    names = [*CONTROL, *task_functions(data, stage)]
    return {name: chalice.scope(stage, name).reserved_concurrency for name in names}


@pytest.mark.parametrize("stage", STAGES)
def test_every_function_has_reserved_concurrency(stage: str) -> None:
    found = reserved(stage)
    assert all(isinstance(n, int) and n >= 1 for n in found.values()), found


@pytest.mark.parametrize("stage", STAGES)
def test_the_coordinators_trigger_stays_within_its_reservation(stage: str) -> None:
    found = reserved(stage)
    settings = AwsConfig.from_env(stage_env(stage, CHALICE_CONFIG))
    assert 2 <= settings.events_concurrency <= found["coordinator"]
    assert found["submit"] >= wiring.SUBMIT_MAX_CONCURRENCY
    # the control plane never competes with task functions: those are capped by their own
    assert sum(found[n] for n in CONTROL) < sum(n for f, n in found.items() if f not in CONTROL)


def test_all_stages_fit_one_accounts_default_quota() -> None:
    total = sum(sum(reserved(stage).values()) for stage in STAGES)
    assert total <= ACCOUNT_QUOTA - UNRESERVED_MIN, total


def test_events_queue_tolerates_throttled_redeliveries() -> None:
    data = config()
    for stage in STAGES:
        timeout = Config(chalice_stage=stage, config_from_disk=data).scope(stage, "coordinator").lambda_timeout
        assert timeout == wiring.COORDINATOR_TIMEOUT_S
    assert wiring.EVENTS_VISIBILITY_S >= 6 * wiring.COORDINATOR_TIMEOUT_S + wiring.EVENTS_BATCH_WINDOW_S
    assert wiring.THROTTLED_RECEIVES * wiring.EVENTS_VISIBILITY_S >= 30 * 60  # half an hour of throttling
    assert wiring.COORDINATOR_ATTEMPTS >= 5  # AWS's advice for a redrive, left for the coordinator alone
    assert DEAD_LETTER_AFTER == wiring.EVENTS_MAX_RECEIVES == wiring.THROTTLED_RECEIVES + wiring.COORDINATOR_ATTEMPTS
    events = templates.load(TEMPLATE)["Resources"]["EventsQueue"]["Properties"]
    assert events["VisibilityTimeout"] == wiring.EVENTS_VISIBILITY_S
    assert events["RedrivePolicy"]["maxReceiveCount"] == wiring.EVENTS_MAX_RECEIVES
    # a message outlives its redeliveries: retention >> receives x visibility
    assert events["MessageRetentionPeriod"] > 10 * wiring.EVENTS_MAX_RECEIVES * wiring.EVENTS_VISIBILITY_S


def test_the_queued_lease_is_the_task_functions_max_event_age() -> None:
    invoke = templates.load(TEMPLATE)["Resources"]["TaskFunctionInvokeConfig"]["Properties"]
    assert invoke["MaximumEventAgeInSeconds"] == wiring.TASK_EVENT_AGE_S == postdeploy.ASYNC_EVENT_AGE_S
    assert invoke["MaximumRetryAttempts"] == 0
    from chalicelib.backends.aws.components import Cloud

    cloud = Cloud(AwsConfig(), clients=None)  # type: ignore[arg-type]  # the coordinator needs no client
    assert cloud.coordinator.config.function_queue_s == wiring.TASK_EVENT_AGE_S


# ---- the deploy's check against the account (infra/concurrency.py) ----------------------------

class FakeLambda:
    """GetAccountSettings and GetFunctionConcurrency (moto has the second only)."""

    def __init__(self, quota: int, unreserved: int, current: dict[str, int]) -> None:
        self.quota, self.unreserved, self.current = quota, unreserved, current

    def get_account_settings(self) -> dict[str, Any]:
        return {"AccountLimit": {"ConcurrentExecutions": self.quota, "UnreservedConcurrentExecutions": self.unreserved}}

    def get_function_concurrency(self, FunctionName: str) -> dict[str, Any]:
        if FunctionName not in self.current:
            from botocore.exceptions import ClientError

            missing = {"Error": {"Code": "ResourceNotFoundException", "Message": "no such function"}}
            raise ClientError(missing, "GetFunctionConcurrency")  # type: ignore[arg-type]
        return {"ReservedConcurrentExecutions": self.current[FunctionName]}


class FakeSession:
    def __init__(self, client: FakeLambda) -> None:
        self._client = client

    def client(self, name: str) -> FakeLambda:
        assert name == "lambda"
        return self._client


def test_the_deploy_stops_when_the_reservations_do_not_fit_the_account() -> None:
    from infra import concurrency
    from infra.errors import DeployError

    wanted = concurrency.reserved(config(), "prod")
    assert sum(wanted.values()) == sum(reserved("prod").values()) == 596
    # a default account: fits; a new account's small quota: one line saying what to change
    concurrency.check(FakeSession(FakeLambda(1000, 1000, {})), "prod", CHALICE_CONFIG)
    with pytest.raises(DeployError, match=r"reserves 596 .* quota in the region is 50 .*reserved_concurrency"):
        concurrency.check(FakeSession(FakeLambda(50, 50, {})), "prod", CHALICE_CONFIG)
    # a redeploy: what the functions hold now is released for their new values
    held = {name: n for name, n in wanted.items()}
    concurrency.check(FakeSession(FakeLambda(700, 104, held)), "prod", CHALICE_CONFIG)
    with pytest.raises(DeployError, match="99 would be left"):
        concurrency.check(FakeSession(FakeLambda(700, 99, held)), "prod", CHALICE_CONFIG)
