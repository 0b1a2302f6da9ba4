"""The stage's memo signing key: written once, at deploy, where only the task runners read it.

    s3://<bucket>/keys/memo-key     64 hex characters from `secrets`, SSE-S3, never overwritten

`ensure` puts it with `If-None-Match: *`, so a second deploy (or two at once) keeps the first
key: replacing it would orphan every memo entry of the stage (they would be ignored, and their
tasks run again). The bucket policy (infra/stack.yaml, MemoKeyReadersOnly) lets only the task
function's and the worker's roles read it, the deployer included out; the runners read it at
their first task (chalicelib/backends/aws/memo_secret.py). To rotate it, delete the object and
deploy again (every memoized result of the stage is then recomputed once).
"""

from __future__ import annotations

import secrets
from collections.abc import Callable, Mapping
from typing import Any

from infra.errors import DeployError


def ensure(sess: Any, outputs: Mapping[str, str], say: Callable[[str], None] = print) -> bool:
    """Write the memo key object if the stage has none; True if this call wrote it."""
    key = outputs.get("MemoKeyObject")
    if not key:  # a stack from before the key object: nothing to write
        return False
    bucket = outputs["BucketName"]
    s3 = sess.client("s3")
    try:
        s3.put_object(Bucket=bucket, Key=key, Body=secrets.token_hex(32).encode(), IfNoneMatch="*",
                      ServerSideEncryption="AES256", ContentType="text/plain")
    except Exception as exc:
        code = getattr(exc, "response", {}).get("Error", {}).get("Code", "")
        if code in ("PreconditionFailed", "ConditionalRequestConflict"):
            say(f"memo key s3://{bucket}/{key}: kept")
            return False
        raise DeployError(f"could not write the memo key s3://{bucket}/{key}: {exc}; the deploying "
                          "identity needs s3:PutObject on it") from exc
    say(f"memo key s3://{bucket}/{key}: written (readable by the task function and the workers only)")
    return True
