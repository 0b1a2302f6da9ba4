"""Publish the tool layers that layers/build made (layers/dist/*.zip) for one stage.

A layer is republished only when its zip changed: the zip's SHA-256 is kept in the layer
version's description. Zips above Lambda's 50 MB direct-upload limit go through the stage's
bucket (under deploy/layers/, which no lifecycle rule expires).
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from infra.cfn import error_code
from infra.names import APP_NAME, REPO

DIST = REPO / "layers" / "dist"
DIRECT_UPLOAD_MAX = 50 * 1024 * 1024  # bytes of a zip sent inline to PublishLayerVersion
ARCHITECTURES = ["x86_64"]  # layers/build collects x86-64 Debian binaries


def layer_name(stage: str, zip_path: Path) -> str:
    return f"{APP_NAME}-{stage}-{zip_path.stem}"


def sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _latest(client: Any, name: str) -> dict[str, Any] | None:
    try:
        versions = client.list_layer_versions(LayerName=name).get("LayerVersions", [])
    except Exception as exc:
        if error_code(exc) == "ResourceNotFoundException":
            return None
        raise
    return max(versions, key=lambda v: int(v["Version"]), default=None)


def publish(session: Any, stage: str, zips: Sequence[Path], bucket: str, runtime: str,
            say: Callable[[str], None] = print) -> list[str]:
    """Layer version ARNs for `zips`, in order, publishing those that changed."""
    client = session.client("lambda")
    arns = []
    for path in zips:
        name, digest = layer_name(stage, path), sha256(path)
        description = f"{path.name} sha256={digest}"
        latest = _latest(client, name)
        if latest is not None and latest.get("Description") == description:
            say(f"layer {name}: unchanged (version {latest['Version']})")
            arns.append(str(latest["LayerVersionArn"]))
            continue
        if path.stat().st_size <= DIRECT_UPLOAD_MAX:
            content: dict[str, Any] = {"ZipFile": path.read_bytes()}
        else:
            key = f"deploy/layers/{name}-{digest}.zip"
            session.client("s3").upload_file(str(path), bucket, key)
            content = {"S3Bucket": bucket, "S3Key": key}
        made = client.publish_layer_version(LayerName=name, Description=description, Content=content,
                                            CompatibleRuntimes=[runtime], CompatibleArchitectures=ARCHITECTURES)
        say(f"layer {name}: published version {made['Version']} ({path.stat().st_size / 1e6:.1f} MB zipped)")
        arns.append(str(made["LayerVersionArn"]))
    return arns


def delete_all(session: Any, stage: str, say: Callable[[str], None] = print) -> int:
    """Delete every version of the stage's layers; returns how many."""
    client = session.client("lambda")
    prefix = f"{APP_NAME}-{stage}-"
    removed = 0
    for page in client.get_paginator("list_layers").paginate():
        for layer in page.get("Layers", []):
            if not layer["LayerName"].startswith(prefix):
                continue
            for version in client.list_layer_versions(LayerName=layer["LayerName"]).get("LayerVersions", []):
                client.delete_layer_version(LayerName=layer["LayerName"], VersionNumber=int(version["Version"]))
                removed += 1
    if removed:
        say(f"deleted {removed} layer version(s) of stage {stage}")
    return removed
