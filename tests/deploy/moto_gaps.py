"""Two gaps of moto 5.2.1's CloudFormation, filled for the stack tests (emulator only).

- AWS::EFS::AccessPoint has no physical id there: `!Ref AccessPoint` would be the Python
  object's repr. The id moto generated is its physical id, as in AWS.
- AWS::EFS::FileSystem and AWS::EFS::AccessPoint have no `Arn` attribute there; moto already
  computes the same ARN AWS returns, so `!GetAtt X.Arn` gets it.

- A stack update of AWS::ECS::TaskDefinition registers the container definitions as
  CloudFormation spells them (Image, not image), unlike a create; the shim spells them as
  the ECS API does, as the create path already does.
- A Lambda function's FileSystemConfigs and EphemeralStorage are dropped by moto's
  UpdateFunctionConfiguration; the shim keeps them, as Lambda does.
- moto's DeleteStack cannot delete VPC endpoints, the gateway attachment or route tables, so
  it raises DependencyViolation for the VPC after it has dropped the stack; AWS deletes them
  and reports the outcome through the stack's status. `DeletingClient` turns that error
  into the AWS behaviour (the stack is gone).

Types moto skips altogether (AWS::SQS::QueuePolicy, AWS::S3::BucketPolicy,
AWS::Lambda::EventInvokeConfig) and the bucket properties its CloudFormation ignores
(NotificationConfiguration, LifecycleConfiguration), like the file system's FileSystemPolicy,
are checked from the template instead.
"""

from __future__ import annotations

from typing import Any

import pytest


def _arn(self: Any, name: str) -> str:
    if name != "Arn":
        raise NotImplementedError(f"moto gap shim: attribute {name!r}")
    return str(getattr(self, "access_point_arn", None) or self.file_system_arn)


def fill_efs_gaps(monkeypatch: pytest.MonkeyPatch) -> None:
    from moto.efs import models as efs

    monkeypatch.setattr(efs.AccessPoint, "physical_resource_id", property(lambda self: self.access_point_id),
                        raising=False)
    for cls in (efs.AccessPoint, efs.FileSystem):
        monkeypatch.setattr(cls, "get_cfn_attribute", _arn, raising=False)
        monkeypatch.setattr(cls, "has_cfn_attr", classmethod(lambda cls, attr: attr == "Arn"), raising=False)


def fill_ecs_gaps(monkeypatch: pytest.MonkeyPatch) -> None:
    from moto.core.utils import pascal_to_camelcase, remap_nested_keys
    from moto.ecs.models import TaskDefinition

    update = TaskDefinition.update_from_cloudformation_json.__func__  # type: ignore[attr-defined]

    def update_from_cloudformation_json(cls: Any, **kwargs: Any) -> Any:
        template = kwargs["cloudformation_json"]
        props = dict(template["Properties"])
        for key in ("ContainerDefinitions", "Volumes"):
            if key in props:
                props[key] = remap_nested_keys(props[key], pascal_to_camelcase)
        return update(cls, **{**kwargs, "cloudformation_json": {**template, "Properties": props}})

    monkeypatch.setattr(TaskDefinition, "update_from_cloudformation_json", classmethod(update_from_cloudformation_json))


def fill_lambda_gaps(monkeypatch: pytest.MonkeyPatch) -> None:
    from moto.awslambda.models import LambdaFunction

    kept = ("FileSystemConfigs", "EphemeralStorage")
    update, get = LambdaFunction.update_configuration, LambdaFunction.get_configuration

    def update_configuration(self: Any, config_updates: dict[str, Any]) -> dict[str, Any]:
        for key in kept:
            if key in config_updates:
                setattr(self, f"_gap_{key}", config_updates[key])
        return update(self, config_updates)

    def get_configuration(self: Any, *args: Any, **kwargs: Any) -> dict[str, Any]:
        config = get(self, *args, **kwargs)
        config.update({key: getattr(self, f"_gap_{key}") for key in kept if hasattr(self, f"_gap_{key}")})
        return config

    monkeypatch.setattr(LambdaFunction, "update_configuration", update_configuration)
    monkeypatch.setattr(LambdaFunction, "get_configuration", get_configuration)


class DeletingClient:
    """A CloudFormation client whose delete_stack behaves as in AWS when moto cannot finish."""

    def __init__(self, client: Any) -> None:
        self._client = client

    def __getattr__(self, name: str) -> Any:
        return getattr(self._client, name)

    def delete_stack(self, **kwargs: Any) -> Any:
        try:
            return self._client.delete_stack(**kwargs)
        except Exception as exc:
            if "DependencyViolation" not in str(exc):
                raise
            return {}
