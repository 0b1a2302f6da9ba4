"""Logs, metrics and traces with Powertools, created on first use.

- Logger: JSON lines; the task function and the worker bind run_id, task_id and attempt for
  the whole invocation, the coordinator passes them per line.
- Metrics (namespace Updraft, embedded metric format): ColdStart, TasksStarted,
  TasksSucceeded, TasksFailed (dimension reason), TaskDuration (seconds), flushed at the end
  of every invocation.
- Tracer (opt-in): one X-Ray subsegment per handler invocation, only where the X-Ray SDK
  is installed (aws-lambda-powertools[tracer]); see docs/observability.md.

Why tracing is opt-in: Powertools' Tracer imports aws_xray_sdk, which the functions' layer
and the worker image do not ship (it brings wrapt and its own botocore, 38 MB unzipped, which
would shadow the runtime's). Without it, invocations run untraced instead of crashing.
"""

from __future__ import annotations

import importlib.util
import logging
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager, nullcontext
from functools import cached_property
from typing import Any

SERVICE = "updraft"
NAMESPACE = "Updraft"


class Observability:
    def __init__(self, service: str = SERVICE, namespace: str = NAMESPACE) -> None:
        self.service = service
        self.namespace = namespace
        self._cold = True
        self._bound: list[str] = []

    @cached_property
    def logger(self) -> Any:
        from aws_lambda_powertools import Logger
        from aws_lambda_powertools.logging.utils import copy_config_to_registered_loggers

        logger = Logger(service=self.service)
        # the adapters' stdlib loggers (updraft.*) write through the same JSON formatter
        logging.getLogger("updraft")
        copy_config_to_registered_loggers(source_logger=logger, include={"updraft"})
        return logger

    @cached_property
    def metrics(self) -> Any:
        from aws_lambda_powertools import Metrics

        return Metrics(namespace=self.namespace, service=self.service)

    @cached_property
    def tracer(self) -> Any | None:
        """Powertools' Tracer if the X-Ray SDK is installed, else None (no tracing)."""
        if importlib.util.find_spec("aws_xray_sdk") is None:
            return None
        from aws_lambda_powertools import Tracer

        return Tracer(service=self.service)

    def _subsegment(self, name: str) -> AbstractContextManager[Any]:
        tracer = self.tracer
        return nullcontext() if tracer is None else tracer.provider.in_subsegment(name)

    @contextmanager
    def invocation(self, handler: str) -> Iterator[None]:
        """Wrap one handler invocation: cold-start metric, trace subsegment, metric flush."""
        from aws_lambda_powertools.metrics import MetricUnit

        if self._cold:
            self._cold = False
            self.metrics.add_metric(name="ColdStart", unit=MetricUnit.Count, value=1)
        self.logger.append_keys(handler=handler)
        try:
            with self._subsegment(f"## {handler}"):
                yield
        finally:
            self.unbind()
            self.metrics.flush_metrics(raise_on_empty_metrics=False)

    def bind(self, **keys: Any) -> None:
        """Put these keys (run_id, task_id, attempt) on every log line until unbind()."""
        self.logger.append_keys(**keys)
        self._bound.extend(keys)

    def unbind(self) -> None:
        if self._bound:
            self.logger.remove_keys(self._bound)
            self._bound = []

    def count(self, name: str, value: float = 1, **dimensions: str) -> None:
        self._metric(name, "Count", value, dimensions)

    def seconds(self, name: str, value: float, **dimensions: str) -> None:
        self._metric(name, "Seconds", value, dimensions)

    def bytes(self, name: str, value: float, **dimensions: str) -> None:
        self._metric(name, "Bytes", value, dimensions)

    def _metric(self, name: str, unit: str, value: float, dimensions: dict[str, str]) -> None:
        from aws_lambda_powertools.metrics import MetricUnit

        if dimensions:  # a metric with its own dimensions goes out as its own EMF document
            from aws_lambda_powertools.metrics import single_metric

            with single_metric(name=name, unit=MetricUnit[unit], value=value, namespace=self.namespace) as metric:
                for key, dim in dimensions.items():
                    metric.add_dimension(name=key, value=dim)
            return
        self.metrics.add_metric(name=name, unit=MetricUnit[unit], value=value)


_obs: Observability | None = None


def obs() -> Observability:
    global _obs
    if _obs is None:
        _obs = Observability()
    return _obs
