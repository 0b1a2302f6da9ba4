"""Small helpers for DynamoDB's low-level API: typed values and expression placeholders.

The low-level client (not the boto3 resource) is used on purpose: no Decimal round-trips,
and every attribute's type is explicit in the code that writes it.
"""

from __future__ import annotations

import json
from typing import Any


def num(value: int | float) -> dict[str, str]:
    if isinstance(value, bool):
        return {"N": str(int(value))}
    return {"N": str(value) if isinstance(value, int) else repr(float(value))}


def text(value: str) -> dict[str, str]:
    return {"S": value}


def unnum(attr: dict[str, Any] | None) -> int | float | None:
    if attr is None:
        return None
    raw = attr["N"]
    if any(c in raw for c in ".eEn"):  # 'n' in nan / inf
        return float(raw)
    return int(raw)


def untext(attr: dict[str, Any] | None) -> str | None:
    return None if attr is None else str(attr["S"])


def jsontext(value: Any) -> dict[str, str]:
    return {"S": json.dumps(value, separators=(",", ":"), sort_keys=True)}


class Expr:
    """Collects #name and :value placeholders as an expression is built.

    DynamoDB rejects placeholders that an expression does not use, so they are only
    registered when used.
    """

    def __init__(self) -> None:
        self.names: dict[str, str] = {}
        self.values: dict[str, dict[str, Any]] = {}

    def n(self, attr: str) -> str:
        key = f"#{attr}"
        self.names[key] = attr
        return key

    def v(self, value: dict[str, Any]) -> str:
        key = f":v{len(self.values)}"
        self.values[key] = value
        return key

    def kwargs(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        if self.names:
            out["ExpressionAttributeNames"] = self.names
        if self.values:
            out["ExpressionAttributeValues"] = self.values
        return out
