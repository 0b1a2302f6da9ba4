"""The table's warm throughput from the stage's advertised completion rate.

A new on-demand table takes 4,000 write units/s at once, then adapts to twice its previous
peak within 30 minutes. At 5.90 write units per completion that is ~680 completions/s: a stage
that advertises more gets the table pre-warmed (the stack's TableWarmWriteUnits, which sets
AWS::DynamoDB::Table WarmThroughput). The rate is UPDRAFT_ADVERTISED_COMPLETIONS_S in the
stage's environment_variables of .chalice/config.json; scripts/bootstrap reads it.

Warm throughput can only go up: a lower rate later keeps the table's current value (nothing is
billed for keeping it), so the parameter never decreases here.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from decimal import Decimal
from typing import Any

from infra.errors import DeployError

SETTING = "UPDRAFT_ADVERTISED_COMPLETIONS_S"
PARAMETER = "TableWarmWriteUnits"  # infra/stack.yaml; 0 leaves the table's own warm throughput

# Write units one completion costs, measured by `scripts/bench-ddb-writes` (docs/benchmarks.md,
# "DynamoDB writes per partition": 59,003 WCU over 10,000 tasks; 5.90 at 2,000 and 3,000 too).
WRITE_UNITS_PER_COMPLETION = Decimal("5.90")
# The same run's busiest second over its mean (7,328 / 5,900 WCU/s at 1,000 completions/s = 1.24).
HEADROOM = Decimal("1.25")
# What a new on-demand table takes without pre-warming (the DynamoDB guide, "warm throughput").
NEW_TABLE_WRITE_UNITS = 4000


def write_units(rate: int) -> int:
    """Write units/s the table needs at `rate` completions/s, with the measured headroom."""
    return math.ceil(rate * WRITE_UNITS_PER_COMPLETION * HEADROOM)


def warm_write_units(rate: int) -> int:
    """The WarmThroughput.WriteUnitsPerSecond to ask for; 0 when a new table already takes it."""
    units = write_units(rate)
    return units if units > NEW_TABLE_WRITE_UNITS else 0


def parse_rate(value: object, where: str) -> int | None:
    """The advertised completions/s (a whole number, at least 1); None when not set."""
    text = str(value).strip() if value is not None else ""
    if not text:
        return None
    if not text.isdigit() or int(text) < 1:
        raise DeployError(f"{where}: {SETTING}={value!r} is not a whole number of completions per second (at "
                          f"least 1); set it to the rate the stage must sustain from its first run, or remove it")
    return int(text)


def stage_rate(config: Mapping[str, Any], stage: str) -> int | None:
    """The stage's rate; the stage's environment_variables override the top-level ones, as in Chalice."""
    env = {**config.get("environment_variables", {}),
           **config.get("stages", {}).get(stage, {}).get("environment_variables", {})}
    return parse_rate(env.get(SETTING), f".chalice/config.json, stage {stage!r}")


def stack_value(rate: int | None, previous: Mapping[str, str]) -> str:
    """The PARAMETER value for the stack: the rate's units, never below the value it had."""
    wanted = warm_write_units(rate) if rate is not None else 0
    before = previous.get(PARAMETER, "0")
    return str(max(wanted, int(before) if before.isdigit() else 0))
