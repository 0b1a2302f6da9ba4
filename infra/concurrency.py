"""Before `chalice deploy`: the stage's reserved concurrency fits the account.

Every function of a stage reserves concurrency (.chalice/config.json, docs/aws.md
"Concurrency and throttling"). Lambda refuses a reservation that leaves less than
UNRESERVED_MIN of the account's regional quota unreserved, and it does so in the middle of
`chalice deploy`, function by function. This check asks first (GetAccountSettings, and each
function's current reservation, which the deploy replaces) and stops with one line saying
how much is missing and what to change.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from infra import chalice_config
from infra.cfn import error_code
from infra.errors import DeployError
from infra.names import APP_NAME

UNRESERVED_MIN = 100  # Lambda keeps at least this much of an account's quota unreserved
CONTROL = ("api_handler", "coordinator", "submit", "sweeper")


def reserved(config: Mapping[str, Any], stage: str) -> dict[str, int]:
    """Deployed function name -> the reserved concurrency the stage gives it (0: none)."""
    from chalice.config import Config

    chalice = Config(chalice_stage=stage, config_from_disk=dict(config))
    names = [*CONTROL, *chalice_config.task_functions(config, stage)]
    return {f"{APP_NAME}-{stage}-{name}": int(chalice.scope(stage, name).reserved_concurrency or 0)
            for name in names}


def problem(quota: int, unreserved: int, wanted: Mapping[str, int], current: Mapping[str, int]) -> str | None:
    """Why the reservations do not fit (None when they do). `current`: what these functions
    reserve now (released when the deploy sets the new values)."""
    after = unreserved + sum(current.values()) - sum(wanted.values())
    if after >= UNRESERVED_MIN:
        return None
    return (f"the stage reserves {sum(wanted.values())} concurrent executions, but this account's quota in the "
            f"region is {quota} with {unreserved} unreserved ({sum(current.values())} more held by these "
            f"functions now): {after} would be left, and Lambda keeps at least {UNRESERVED_MIN}. Lower "
            "reserved_concurrency in .chalice/config.json (docs/aws.md, Concurrency), or ask AWS for a higher "
            "concurrency quota")


def check(session: Any, stage: str, config_path: Path) -> None:
    """Raise DeployError when the stage's reservations would not fit the account."""
    wanted = reserved(chalice_config.load(config_path), stage)
    client = session.client("lambda")
    limit = client.get_account_settings()["AccountLimit"]
    current: dict[str, int] = {}
    for name in wanted:
        try:
            got = client.get_function_concurrency(FunctionName=name)
        except Exception as exc:
            if error_code(exc) != "ResourceNotFoundException":
                raise
            continue  # not deployed yet
        current[name] = int(got.get("ReservedConcurrentExecutions") or 0)
    why = problem(int(limit["ConcurrentExecutions"]), int(limit["UnreservedConcurrentExecutions"]), wanted, current)
    if why:
        raise DeployError(why)
