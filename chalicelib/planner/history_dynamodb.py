"""Planner history in the deployment's DynamoDB table (the one the state store uses).

    item            pk             sk                         attributes
    sample          H#<type>       <at, 17 digits>#<random>   d: the sample as JSON
    type index      H#             <type>                     (none)

The index item lets `samples()` with no filter find every type without scanning the run
table. Reads are one Query per type, newest first, at most `keep_per_type` items each. Takes a
boto3 DynamoDB client (chalicelib.backends.aws.clients.AwsClients.dynamodb); imports no boto3.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Collection, Sequence
from typing import Any

from chalicelib.planner.history import Sample

INDEX_PK = "H#"
BATCH = 25  # BatchWriteItem's limit


def _pk(task_type: str) -> str:
    return f"H#{task_type}"


class DynamoDbHistoryStore:
    def __init__(self, client: Any, table: str, keep_per_type: int = 500) -> None:
        self.client = client
        self.table = table
        self.keep_per_type = keep_per_type

    def add(self, samples: Sequence[Sample]) -> None:
        items = [{"pk": {"S": INDEX_PK}, "sk": {"S": t}} for t in sorted({s.task_type for s in samples})]
        for s in samples:
            at = s.at or time.time()
            sk = f"{int(at * 1e6):017d}#{os.urandom(4).hex()}"
            items.append({"pk": {"S": _pk(s.task_type)}, "sk": {"S": sk},
                          "d": {"S": json.dumps(s.to_dict(), separators=(",", ":"))}})
        for start in range(0, len(items), BATCH):
            self._write([{"PutRequest": {"Item": item}} for item in items[start:start + BATCH]])

    def _write(self, requests: list[dict[str, Any]], attempts: int = 5) -> None:
        pending = {self.table: requests}
        for attempt in range(attempts):
            left = self.client.batch_write_item(RequestItems=pending).get("UnprocessedItems") or {}
            if not left:
                return
            pending = left
            time.sleep(min(1.0, 0.05 * 2 ** attempt))
        raise RuntimeError(f"DynamoDB kept {len(pending.get(self.table, []))} history item(s) unprocessed")

    def _query(self, pk: str, limit: int | None, newest_first: bool) -> list[dict[str, Any]]:
        out: list[dict[str, Any]] = []
        kwargs: dict[str, Any] = {
            "TableName": self.table, "KeyConditionExpression": "pk = :pk",
            "ExpressionAttributeValues": {":pk": {"S": pk}}, "ScanIndexForward": not newest_first,
        }
        while True:
            if limit is not None:
                kwargs["Limit"] = limit - len(out)
            page = self.client.query(**kwargs)
            out.extend(page.get("Items", []))
            key = page.get("LastEvaluatedKey")
            if not key or (limit is not None and len(out) >= limit):
                return out
            kwargs["ExclusiveStartKey"] = key

    def types(self) -> list[str]:
        return [item["sk"]["S"] for item in self._query(INDEX_PK, None, newest_first=False)]

    def samples(self, task_types: Collection[str] | None = None) -> list[Sample]:
        out: list[Sample] = []
        for task_type in (self.types() if task_types is None else task_types):
            for item in self._query(_pk(task_type), self.keep_per_type, newest_first=True):
                try:
                    out.append(Sample.from_dict(json.loads(item["d"]["S"])))
                except (KeyError, ValueError, TypeError):
                    continue
        out.sort(key=lambda s: s.at)
        return out
