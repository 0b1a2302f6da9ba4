"""A run's log lines from CloudWatch Logs, for `updraft logs RUN [TASK] --stage/--api`.

The stack's functions log JSON lines (Powertools) carrying run_id, task_id and attempt; the
Fargate worker does the same. Their log groups are named by infra/stack.yaml and Chalice:

    /aws/lambda/<app>-<stage>        the API            /aws/lambda/<app>-<stage>-task
    /aws/lambda/<app>-<stage>-coordinator, -sweeper, -submit
    /ecs/<app>-<stage>-worker        the container workers

Events are fetched with filter_log_events and the run id as a search term (every line of the
run carries it), then the task id is matched on the parsed JSON, and the groups are merged in
time order.
"""

from __future__ import annotations

import heapq
import json
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any

from chalicelib.errors import ConfigError, NotFoundError

APP_NAME = "updraft"
MAX_EVENTS = 100_000  # a hard stop, so a huge run cannot make `updraft logs` run forever


@dataclass(frozen=True)
class LogEvent:
    timestamp_ms: int
    group: str
    stream: str
    message: str
    fields: dict[str, Any] | None  # the parsed JSON line, None for plain text

    @property
    def source(self) -> str:
        """A short name of where it came from: task, coordinator, worker, api, ..."""
        name = self.group.rsplit("/", 1)[-1]
        parts = name.split("-")
        return parts[-1] if len(parts) > 2 else "api"

    def text(self) -> str:
        if self.fields is None:
            return self.message.rstrip("\n")
        f = self.fields
        level = f.get("level", "")
        msg = f.get("message", "")
        keys = [f"{k}={f[k]}" for k in ("task_id", "attempt", "reason", "state") if f.get(k) not in (None, "")]
        return " ".join(str(x) for x in (level, msg, *keys) if x != "")


def default_groups(stage: str, app_name: str = APP_NAME) -> list[str]:
    """The log group names infra/stack.yaml and Chalice create for a stage."""
    base = f"/aws/lambda/{app_name}-{stage}"
    return [base, f"{base}-task", f"{base}-coordinator", f"{base}-sweeper", f"{base}-submit",
            f"/ecs/{app_name}-{stage}-worker"]


class CloudLogs:
    def __init__(self, stage: str = "dev", app_name: str = APP_NAME, groups: Iterable[str] | None = None,
                 region: str | None = None, session: Any = None, client: Any = None) -> None:
        self.stage = stage
        self.app_name = app_name
        self.explicit = list(groups or [])
        self._region = region
        self._session = session
        self._client = client

    @property
    def client(self) -> Any:
        if self._client is None:
            import boto3.session

            session = self._session or boto3.session.Session(region_name=self._region)
            self._client = session.client("logs", region_name=self._region or session.region_name)
        return self._client

    def groups(self) -> list[str]:
        """The explicit groups, else those of the stage that exist."""
        if self.explicit:
            return self.explicit
        wanted = set(default_groups(self.stage, self.app_name))
        found: list[str] = []
        for prefix in (f"/aws/lambda/{self.app_name}-{self.stage}", f"/ecs/{self.app_name}-{self.stage}"):
            pages = self.client.get_paginator("describe_log_groups").paginate(logGroupNamePrefix=prefix)
            for page in pages:
                found += [g["logGroupName"] for g in page.get("logGroups", []) if g["logGroupName"] in wanted]
        if not found:
            raise ConfigError(f"no log groups of stage {self.stage!r} (app {self.app_name!r}) in this account and "
                              f"region; pass --stage, --region or --log-group")
        return sorted(set(found))

    def events(self, run_id: str, task_id: str | None = None, start_ms: int | None = None,
               limit: int = MAX_EVENTS) -> Iterator[LogEvent]:
        """The run's lines (only the task's, if given), oldest first, at most `limit`."""
        streams = [self._group_events(g, run_id, task_id, start_ms) for g in self.groups()]
        merged = heapq.merge(*streams, key=lambda e: (e.timestamp_ms, e.group, e.stream))
        for count, event in enumerate(merged):
            if count >= limit:
                return
            yield event

    def _group_events(self, group: str, run_id: str, task_id: str | None, start_ms: int | None) -> Iterator[LogEvent]:
        kwargs: dict[str, Any] = {"logGroupName": group, "filterPattern": f'"{run_id}"'}
        if start_ms is not None:
            kwargs["startTime"] = start_ms
        try:
            pages = self.client.get_paginator("filter_log_events").paginate(**kwargs)
            for page in pages:
                for raw in page.get("events", []):
                    event = _event(group, raw)
                    if _matches(event, run_id, task_id):
                        yield event
        except Exception as exc:
            if "ResourceNotFoundException" in type(exc).__name__ or "ResourceNotFound" in str(exc):
                if self.explicit:
                    raise NotFoundError(f"log group {group} does not exist") from None
                return
            raise


def _event(group: str, raw: dict[str, Any]) -> LogEvent:
    message = str(raw.get("message", ""))
    fields: dict[str, Any] | None = None
    start = message.find("{")
    if start >= 0:
        try:
            parsed = json.loads(message[start:])
            fields = parsed if isinstance(parsed, dict) else None
        except ValueError:
            fields = None
    return LogEvent(int(raw.get("timestamp", 0)), group, str(raw.get("logStreamName", "")), message, fields)


def _matches(event: LogEvent, run_id: str, task_id: str | None) -> bool:
    if event.fields is not None:
        if event.fields.get("run_id") not in (None, run_id):
            return False
        if task_id is None:
            return True
        return bool(event.fields.get("task_id") == task_id)
    return run_id in event.message and (task_id is None or task_id in event.message)
