"""The secret memo entries are signed with, in the cloud: an object only the runners can read.

Memo entries on the shared volume carry an HMAC (cache/memo.py); whoever holds the secret can
forge an entry that makes a later task "CACHED" with outputs of their choosing. A task is the
user's code and runs as the same OS user as its runner (the Lambda sandbox's user, the
worker image's), so the secret must be somewhere a task cannot read:

- not a file on the shared volume (a task can read what its runner can);
- not an environment variable of the function or worker: the runner withholds it from tasks and
  is non-dumpable, but the value would also sit in the function's configuration and the task
  definition (readable with lambda:GetFunctionConfiguration / ecs:DescribeTaskDefinition) and in
  the deploy's files, and on Lambda in the environment of processes we do not control;
- an object in the stage's bucket (`UPDRAFT_MEMO_KEY_OBJECT`, `keys/memo-key`): written once by
  scripts/deploy (infra/memo_key.py), readable only by the task function's and the worker's
  roles (a Deny in the bucket policy for every other principal), read with the runner's role
  credentials at its first task and kept in the memory of this (non-dumpable) process. A task
  gets no credentials (task_env.py), so it cannot read the object. Reached through the S3
  gateway endpoint, so a function in the VPC needs no new endpoint and the stage no new charge.

An object that cannot be read (a stage deployed before this, or a role without access) turns
memoization off for the process, with an error in the log: tasks run, nothing is reused, and no
weaker key stands in.
"""

from __future__ import annotations

import logging

from chalicelib.backends.aws.clients import AwsClients
from chalicelib.backends.aws.config import AwsConfig

log = logging.getLogger("updraft.cache")

MIN_SECRET_BYTES = 32


def read_memo_secret(config: AwsConfig, clients: AwsClients | None = None) -> bytes | None:
    """The secret in `config.memo_key_object` of the stage's bucket; None if it cannot be used."""
    clients = clients or AwsClients(config)
    try:
        body = clients.s3.get_object(Bucket=config.bucket, Key=config.memo_key_object)["Body"].read()
    except Exception as exc:
        log.error("memoization off: cannot read the memo key s3://%s/%s (%s); run scripts/deploy "
                  "for this stage, which writes it", config.bucket, config.memo_key_object, exc)
        return None
    secret = bytes(body).strip()
    if len(secret) < MIN_SECRET_BYTES:
        log.error("memoization off: the memo key s3://%s/%s is shorter than %d bytes",
                  config.bucket, config.memo_key_object, MIN_SECRET_BYTES)
        return None
    return secret
