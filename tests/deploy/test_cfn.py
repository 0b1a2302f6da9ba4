"""Stack operations on the paths moto does not take: a change set that would replace the
table, a first creation that rolled back, an operation already in progress, a failure's
reasons. The CloudFormation client is a scripted fake."""

from __future__ import annotations

from typing import Any

import pytest

from infra.cfn import Stacks
from infra.errors import DeployError, RefusedError


class ClientError(Exception):
    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.response = {"Error": {"Code": code, "Message": message}}


class FakeCloudFormation:
    """Statuses are consumed one describe_stacks at a time; the last one repeats."""

    def __init__(self, statuses: list[str | None], changes: list[dict[str, Any]] | None = None,
                 events: list[dict[str, Any]] | None = None) -> None:
        self.statuses = statuses
        self.changes = changes or []
        self.events = events or []
        self.calls: list[str] = []

    def _status(self) -> str | None:
        return self.statuses.pop(0) if len(self.statuses) > 1 else self.statuses[0]

    def describe_stacks(self, StackName: str) -> dict[str, Any]:
        status = self._status()
        if status is None:
            raise ClientError("ValidationError", f"Stack with id {StackName} does not exist")
        return {"Stacks": [{"StackStatus": status, "Parameters": [], "Outputs": [
            {"OutputKey": "TableName", "OutputValue": "t"}]}]}

    def describe_stack_events(self, StackName: str) -> dict[str, Any]:
        return {"StackEvents": self.events}

    def get_template_summary(self, TemplateBody: str) -> dict[str, Any]:
        return {"Parameters": [{"ParameterKey": "Stage"}]}

    def create_change_set(self, **kwargs: Any) -> None:
        self.calls.append("create_change_set")

    def describe_change_set(self, **kwargs: Any) -> dict[str, Any]:
        return {"Status": "CREATE_COMPLETE", "Changes": [{"ResourceChange": c} for c in self.changes]}

    def __getattr__(self, name: str) -> Any:
        def record(**kwargs: Any) -> dict[str, Any]:
            self.calls.append(name)
            return {}
        return record


def stacks(client: FakeCloudFormation, said: list[str]) -> Stacks:
    return Stacks(client, say=said.append, sleep=lambda s: None, poll_s=0, timeout_s=5)


def test_an_update_replacing_the_table_is_refused_and_cleaned_up(said: list[str]) -> None:
    client = FakeCloudFormation(["UPDATE_COMPLETE"], changes=[
        {"Action": "Modify", "LogicalResourceId": "Table", "ResourceType": "AWS::DynamoDB::Table",
         "Replacement": "True"},
        {"Action": "Modify", "LogicalResourceId": "WorkerTaskDefinition", "ResourceType": "AWS::ECS::TaskDefinition",
         "Replacement": "True"}])
    with pytest.raises(RefusedError, match="replace Table"):
        stacks(client, said).ensure("s", "{}", {"Stage": "dev"}, {})
    assert "execute_change_set" not in client.calls and "delete_change_set" in client.calls
    assert any("will modify  Table AWS::DynamoDB::Table (replaced)" in line for line in said), said


def test_replacing_only_stateless_resources_goes_ahead(said: list[str]) -> None:
    client = FakeCloudFormation(["UPDATE_COMPLETE"], changes=[
        {"Action": "Modify", "LogicalResourceId": "WorkerTaskDefinition", "ResourceType": "AWS::ECS::TaskDefinition",
         "Replacement": "True"}])
    assert stacks(client, said).ensure("s", "{}", {}, {}) == {"TableName": "t"}
    assert client.calls[-1] == "execute_change_set"


def test_a_failed_first_creation_is_deleted_and_created_again(said: list[str]) -> None:
    client = FakeCloudFormation(["ROLLBACK_COMPLETE", "ROLLBACK_COMPLETE", "DELETE_IN_PROGRESS", None,
                                 "CREATE_IN_PROGRESS", "CREATE_COMPLETE"])
    assert stacks(client, said).ensure("s", "{}", {}, {}) == {"TableName": "t"}
    assert [c for c in client.calls if c in ("delete_stack", "create_stack")] == ["delete_stack", "create_stack"]


def test_a_running_operation_is_waited_for_first(said: list[str]) -> None:
    client = FakeCloudFormation(["UPDATE_IN_PROGRESS", "UPDATE_IN_PROGRESS", "UPDATE_COMPLETE"])
    stacks(client, said).ensure("s", "{}", {}, {})
    assert said[0] == "s: UPDATE_IN_PROGRESS; waiting for it to finish"
    assert "create_change_set" in client.calls


def test_a_failure_names_the_resources_and_their_reasons(said: list[str]) -> None:
    events = [{"EventId": "2", "LogicalResourceId": "Bucket", "ResourceStatus": "CREATE_FAILED",
               "ResourceStatusReason": "updraft-dev-1-us-east-1 already exists"},
              {"EventId": "1", "LogicalResourceId": "Vpc", "ResourceStatus": "CREATE_COMPLETE"}]
    client = FakeCloudFormation([None, None, "CREATE_IN_PROGRESS", "ROLLBACK_COMPLETE"], events=events)
    with pytest.raises(DeployError, match="Bucket: updraft-dev-1-us-east-1 already exists"):
        stacks(client, said).ensure("s", "{}", {}, {})


def test_a_stuck_stack_says_what_to_do(said: list[str]) -> None:
    client = FakeCloudFormation(["UPDATE_ROLLBACK_FAILED"])
    with pytest.raises(DeployError, match="continue the rollback"):
        stacks(client, said).ensure("s", "{}", {}, {})
