"""Two gaps of moto 5.2.1's CloudFormation, filled for the stack tests (emulator only).

- AWS::EFS::AccessPoint has no physical id there: `!Ref AccessPoint` would be the Python
  object's repr. The id moto generated is its physical id, as in AWS.
- AWS::EFS::FileSystem and AWS::EFS::AccessPoint have no `Arn` attribute there; moto already
  computes the same ARN AWS returns, so `!GetAtt X.Arn` gets it.

Types moto skips altogether (AWS::SQS::QueuePolicy, AWS::S3::BucketPolicy,
AWS::Lambda::EventInvokeConfig) and the bucket properties its CloudFormation ignores
(NotificationConfiguration, LifecycleConfiguration) are checked from the template instead.
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
