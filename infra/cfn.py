"""Create, update and delete one CloudFormation stack, idempotently, printing its events.

`ensure` is safe to repeat: a missing stack is created; an existing one is updated through a
change set whose changes are printed first (parameters not given keep their previous
values), and left alone when the change set is empty; an update that would replace a
stateful resource is refused; a stack whose first creation failed (ROLLBACK_COMPLETE, which
cannot be updated) is deleted and created again.
Every wait is bounded and ends with the stack's own failure reasons when it fails.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from chalicelib.backends.aws.clients import error_code
from infra.errors import DeployError, RefusedError

__all__ = ["Stacks", "error_code", "error_message"]

# resources whose replacement loses data; an update that would replace one is refused
STATEFUL = {"AWS::DynamoDB::Table", "AWS::S3::Bucket", "AWS::EFS::FileSystem", "AWS::SQS::Queue"}
STUCK = {
    "ROLLBACK_FAILED": "delete it (scripts/destroy) and bootstrap again",
    "UPDATE_ROLLBACK_FAILED": "continue the rollback in the CloudFormation console, then bootstrap again",
    "DELETE_FAILED": "finish deleting it (scripts/destroy) before bootstrapping again",
}
NO_CHANGES = "No updates are to be performed"
DONE = {"CREATE_COMPLETE", "UPDATE_COMPLETE", "IMPORT_COMPLETE"}
GONE = {"DELETE_COMPLETE"}
FAILED = {"CREATE_FAILED", "ROLLBACK_COMPLETE", "ROLLBACK_FAILED", "DELETE_FAILED",
          "UPDATE_ROLLBACK_COMPLETE", "UPDATE_ROLLBACK_FAILED", "UPDATE_FAILED",
          "IMPORT_ROLLBACK_COMPLETE", "IMPORT_ROLLBACK_FAILED"}


def error_message(exc: BaseException) -> str:
    response = getattr(exc, "response", None)
    return str(response.get("Error", {}).get("Message", "")) if isinstance(response, dict) else str(exc)


@dataclass
class Stacks:
    """Stack operations over an injected CloudFormation client."""

    client: Any
    say: Callable[[str], None] = print
    sleep: Callable[[float], None] = time.sleep
    poll_s: float = 10.0
    timeout_s: float = 3600.0
    allow_replace: bool = False
    _seen: set[str] = field(default_factory=set)
    _change_set: str = ""

    # ---- reads ------------------------------------------------------------------------------

    def describe(self, name: str) -> dict[str, Any] | None:
        try:
            stacks = self.client.describe_stacks(StackName=name)["Stacks"]
        except Exception as exc:
            if error_code(exc) == "ValidationError" and "does not exist" in error_message(exc):
                return None
            raise
        return stacks[0] if stacks else None

    def status(self, name: str) -> str | None:
        stack = self.describe(name)
        return None if stack is None else str(stack["StackStatus"])

    def outputs(self, name: str) -> dict[str, str]:
        stack = self.describe(name)
        if stack is None:
            raise DeployError(f"stack {name} does not exist; run scripts/bootstrap first")
        return {o["OutputKey"]: o["OutputValue"] for o in stack.get("Outputs", [])}

    # ---- writes -----------------------------------------------------------------------------

    def ensure(self, name: str, body: str, params: Mapping[str, str], tags: Mapping[str, str]) -> dict[str, str]:
        """Create or update the stack to `body` with `params`; returns its outputs."""
        status = self._settle(name)
        if status == "ROLLBACK_COMPLETE":
            self.say(f"{name}: its first creation failed and left nothing usable; deleting it to start over")
            self.delete(name)
            status = None
        if status in STUCK:
            raise DeployError(f"{name} is {status}: {STUCK[status]}")
        common: dict[str, Any] = {
            "StackName": name, "TemplateBody": body, "Capabilities": ["CAPABILITY_IAM"],
            "Tags": [{"Key": k, "Value": v} for k, v in tags.items()],
        }
        if status is None:
            self.say(f"{name}: creating")
            self._mark_seen(name)
            self.client.create_stack(**common, Parameters=_params(params, {}, {}), OnFailure="ROLLBACK")
            self._wait(name, DONE, "create")
            return self.outputs(name)
        previous = {p["ParameterKey"]: p["ParameterValue"] for p in (self.describe(name) or {}).get("Parameters", [])}
        accepted = {p["ParameterKey"]: p.get("DefaultValue")
                    for p in self.client.get_template_summary(TemplateBody=body)["Parameters"]}
        changes = self._plan(name, common, _params(params, previous, accepted))
        if changes is None:
            self.say(f"{name}: up to date")
            return self.outputs(name)
        self._check_replacements(name, changes)
        self.say(f"{name}: updating")
        self._mark_seen(name)
        self.client.execute_change_set(StackName=name, ChangeSetName=self._change_set)
        self._wait(name, DONE, "update")
        return self.outputs(name)

    def _plan(self, name: str, common: Mapping[str, Any], params: list[dict[str, str]]) -> list[dict[str, Any]] | None:
        """A change set for the update, its changes printed; None when nothing would change."""
        self._change_set = f"bootstrap-{int(time.time())}"
        self.client.create_change_set(**common, Parameters=params, ChangeSetName=self._change_set,
                                      ChangeSetType="UPDATE")
        deadline = time.monotonic() + self.timeout_s
        while True:
            described = self.client.describe_change_set(StackName=name, ChangeSetName=self._change_set)
            if described["Status"] in ("CREATE_COMPLETE", "FAILED"):
                break
            if time.monotonic() > deadline:
                raise DeployError(f"{name}: change set {self._change_set} still {described['Status']}")
            self.sleep(min(self.poll_s, 2.0))
        reason = str(described.get("StatusReason") or "")
        if described["Status"] == "FAILED":
            self.client.delete_change_set(StackName=name, ChangeSetName=self._change_set)
            if "didn't contain changes" in reason or NO_CHANGES in reason:
                return None
            raise DeployError(f"{name}: the update cannot be planned: {reason}")
        changes = [c["ResourceChange"] for c in described.get("Changes", []) if "ResourceChange" in c]
        for change in changes:
            replace = " (replaced)" if change.get("Replacement") == "True" else ""
            self.say(f"  will {change.get('Action', '?').lower():<7} {change.get('LogicalResourceId')}"
                     f" {change.get('ResourceType', '')}{replace}")
        return changes

    def _check_replacements(self, name: str, changes: list[dict[str, Any]]) -> None:
        lost = sorted(c["LogicalResourceId"] for c in changes
                      if c.get("Replacement") == "True" and c.get("ResourceType") in STATEFUL)
        if lost and not self.allow_replace:
            self.client.delete_change_set(StackName=name, ChangeSetName=self._change_set)
            raise RefusedError(f"{name}: the update would replace {', '.join(lost)}, losing their data; "
                               "nothing was changed (pass --allow-replace to go ahead)")

    def delete(self, name: str) -> None:
        status = self._settle(name)
        if status is None:
            return
        self._mark_seen(name)
        self.client.delete_stack(StackName=name)
        self._wait(name, GONE, "delete")

    # ---- waiting ----------------------------------------------------------------------------

    def _settle(self, name: str) -> str | None:
        """Wait out an operation already in progress; returns the stack's status (None: absent)."""
        status = self.status(name)
        if status is not None and status.endswith("_IN_PROGRESS"):
            self.say(f"{name}: {status}; waiting for it to finish")
            status = self._wait(name, DONE | FAILED | GONE, "current operation", raise_on_failure=False)
        return None if status in GONE else status

    def _wait(self, name: str, want: set[str], what: str, raise_on_failure: bool = True) -> str | None:
        deadline = time.monotonic() + self.timeout_s
        while True:
            status = self.status(name)
            self._print_events(name)
            if status is None:
                status = "DELETE_COMPLETE"
            if status in want:
                return status
            if status in FAILED or status in GONE:
                if raise_on_failure:
                    raise DeployError(f"{name}: {what} failed ({status}): {self._reasons(name)}")
                return status
            if time.monotonic() > deadline:
                raise DeployError(f"{name}: {what} still {status} after {self.timeout_s:.0f} s; "
                                  "see the stack's events in the CloudFormation console")
            self.sleep(self.poll_s)

    def _events(self, name: str) -> list[dict[str, Any]]:
        try:
            return list(self.client.describe_stack_events(StackName=name).get("StackEvents", []))
        except Exception as exc:
            if error_code(exc) == "ValidationError":
                return []
            raise

    def _mark_seen(self, name: str) -> None:
        self._seen.update(e["EventId"] for e in self._events(name))

    def _print_events(self, name: str) -> None:
        for event in reversed(self._events(name)):
            if event["EventId"] in self._seen:
                continue
            self._seen.add(event["EventId"])
            reason = event.get("ResourceStatusReason") or ""
            self.say(f"  {event.get('ResourceStatus', ''):<28} {event.get('LogicalResourceId', '')}"
                     + (f"  {reason}" if reason else ""))

    def _reasons(self, name: str) -> str:
        reasons = [f"{e.get('LogicalResourceId')}: {e['ResourceStatusReason']}" for e in self._events(name)
                   if e.get("ResourceStatus", "").endswith("_FAILED") and e.get("ResourceStatusReason")]
        return "; ".join(reversed(reasons[:5])) or "no reason recorded"


def _params(params: Mapping[str, str], previous: Mapping[str, str],
            defaults: Mapping[str, str | None]) -> list[dict[str, str]]:
    """Given values, then the previous value of every other parameter the template still has
    where it differs from the template's default (an omitted parameter takes the default).

    Previous values are passed as values rather than UsePreviousValue: the same effect, as the
    template has no NoEcho parameter, and emulators compare them correctly.
    """
    kept = {k: v for k, v in previous.items() if k in defaults and k not in params and v != defaults[k]}
    return [{"ParameterKey": k, "ParameterValue": v} for k, v in {**params, **kept}.items()]
