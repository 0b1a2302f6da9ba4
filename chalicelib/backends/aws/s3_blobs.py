"""S3 blob store: key -> object in one bucket, under an optional prefix.

Layout (per-run prefixes, shared with the local store):
    runs/<run>/workflow.json      the run's spec (native format; any size: never in an item
                                  or a message, which carry ids only)
    runs/<run>/data/<path>        external inputs and every task's outputs
    runs/<run>/logs/<task>.<attempt>.log
    runs/<run>/manifest.json      written when the run finishes
    submit/...                    workflow uploads that start runs (S3 trigger)

Files above the multipart threshold go up and down in parts, in parallel (boto3's transfer
manager). Keys may also be full `s3://bucket/key` URIs: a workflow's external inputs can live
in another bucket and are read from there directly.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Iterator
from typing import Any

from chalicelib.backends.aws.clients import AwsClients, error_code
from chalicelib.backends.aws.config import S3_MAX_DELETE, AwsConfig
from chalicelib.engine.blob_keys import check_key, check_own_prefix, check_prefix
from chalicelib.errors import NotFoundError

_MISSING = {"404", "NoSuchKey", "NotFound"}


def split_uri(uri: str) -> tuple[str, str]:
    """'s3://bucket/key' -> (bucket, key); raises ValueError for anything else."""
    if not uri.startswith("s3://"):
        raise ValueError(f"not an s3:// URI: {uri!r}")
    bucket, _, key = uri[len("s3://"):].partition("/")
    if not bucket or not key:
        raise ValueError(f"s3 URI {uri!r} needs a bucket and a key: s3://bucket/key")
    return bucket, key


class S3BlobStore:
    def __init__(self, config: AwsConfig, clients: AwsClients | None = None, bucket: str | None = None) -> None:
        self.config = config
        self.clients = clients or AwsClients(config)
        self.bucket = bucket or config.bucket
        self.prefix = config.blob_prefix
        self._transfer: Any = None

    @property
    def _s3(self) -> Any:
        return self.clients.s3

    def _where(self, key: str) -> tuple[str, str]:
        if key.startswith("s3://"):
            return split_uri(key)
        return self.bucket, self.prefix + check_key(key)

    def uri(self, key: str) -> str:
        bucket, name = self._where(key)
        return f"s3://{bucket}/{name}"

    @property
    def _transfer_config(self) -> Any:
        if self._transfer is None:
            from boto3.s3.transfer import TransferConfig

            mb = 1024 * 1024
            threshold = self.config.multipart_threshold_mb * mb
            self._transfer = TransferConfig(multipart_threshold=threshold,
                                            multipart_chunksize=max(8 * mb, threshold // 4), max_concurrency=8)
        return self._transfer

    def _missing(self, key: str) -> NotFoundError:
        bucket, name = self._where(key)
        return NotFoundError(f"no object s3://{bucket}/{name}")

    def put_bytes(self, key: str, data: bytes) -> None:
        bucket, name = self._where(key)
        self._s3.put_object(Bucket=bucket, Key=name, Body=data)

    def get_bytes(self, key: str) -> bytes:
        bucket, name = self._where(key)
        try:
            return bytes(self._s3.get_object(Bucket=bucket, Key=name)["Body"].read())
        except Exception as exc:
            if error_code(exc) in _MISSING:
                raise self._missing(key) from None
            raise

    def get_range(self, key: str, start: int, length: int) -> bytes:
        """`length` bytes from offset `start` (fewer at the end), by a ranged GET."""
        if length <= 0:
            return b""
        bucket, name = self._where(key)
        try:
            body = self._s3.get_object(Bucket=bucket, Key=name, Range=f"bytes={start}-{start + length - 1}")["Body"]
            return bytes(body.read())
        except Exception as exc:
            if error_code(exc) in _MISSING:
                raise self._missing(key) from None
            if error_code(exc) == "InvalidRange":  # start at or past the end
                return b""
            raise

    def put_file(self, key: str, path: str, move: bool = False) -> int:
        bucket, name = self._where(key)
        size = os.path.getsize(path)
        self._s3.upload_file(path, bucket, name, Config=self._transfer_config)
        if move:
            os.unlink(path)
        return size

    def get_file(self, key: str, dest: str) -> int:
        """Download to a temporary file beside `dest`, then rename: no partial file is seen."""
        bucket, name = self._where(key)
        folder = os.path.dirname(os.path.abspath(dest))
        os.makedirs(folder, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=".tmp-", dir=folder)
        os.close(fd)
        try:
            self._s3.download_file(bucket, name, tmp, Config=self._transfer_config)
            os.replace(tmp, dest)
        except Exception as exc:
            _unlink(tmp)
            if error_code(exc) in _MISSING:
                raise self._missing(key) from None
            raise
        return os.path.getsize(dest)

    def _head(self, key: str) -> dict[str, Any] | None:
        bucket, name = self._where(key)
        try:
            return dict(self._s3.head_object(Bucket=bucket, Key=name))
        except Exception as exc:
            if error_code(exc) in _MISSING:
                return None
            raise

    def exists(self, key: str) -> bool:
        return self._head(key) is not None

    def size(self, key: str) -> int:
        head = self._head(key)
        if head is None:
            raise self._missing(key)
        return int(head["ContentLength"])

    def list(self, prefix: str) -> Iterator[str]:
        if prefix.startswith("s3://"):  # another location: keys are yielded as they are there
            bucket, _, name = prefix[len("s3://"):].partition("/")
            strip = 0
        else:
            bucket, name, strip = self.bucket, self.prefix + check_prefix(prefix), len(self.prefix)
        paginator = self._s3.get_paginator("list_objects_v2")
        for page in paginator.paginate(Bucket=bucket, Prefix=name):
            for obj in page.get("Contents", []):
                yield obj["Key"][strip:]

    def delete_prefix(self, prefix: str) -> int:
        keys = list(self.list(check_own_prefix(prefix)))  # list() reads other locations too: not this
        for start in range(0, len(keys), S3_MAX_DELETE):
            chunk = keys[start:start + S3_MAX_DELETE]
            self._s3.delete_objects(Bucket=self.bucket, Delete={
                "Objects": [{"Key": self.prefix + k} for k in chunk], "Quiet": True})
        return len(keys)


def _unlink(path: str) -> None:
    with contextlib.suppress(FileNotFoundError):
        os.unlink(path)
