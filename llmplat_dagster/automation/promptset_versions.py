"""Promptset versions published under an S3 prefix, and which of them a sensor has not seen yet.

Two layouts are accepted, because teams publish both ways:

- directories: ``<prefix>/<name>/<version>/promptset.jsonl`` (or ``<prefix>/<name>/<version>.jsonl``);
- flat: ``<prefix>/<name>.jsonl`` in a versioned bucket, where every upload is a new S3 object version.

Only current object versions count (an overwritten or deleted object is not a promptset anyone can load).
A version is identified by "<key>@<VersionId or ETag>", so both a new directory and a re-upload are new.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any


class PromptsetSourceError(RuntimeError):
    """The promptset prefix cannot be listed; the message names the bucket and prefix."""


@dataclass(frozen=True)
class PromptsetVersion:
    key: str
    version_id_or_etag: str
    last_modified: datetime
    name: str
    label: str | None = None  # the <version> path segment of the directory layout

    @property
    def token(self) -> str:
        """What the sensor's cursor stores for this promptset name."""
        return f"{self.key}@{self.version_id_or_etag}"


def list_promptset_versions(s3_client: Any, bucket: str, prefix: str) -> list[PromptsetVersion]:
    """Current promptset objects under `prefix`, oldest first; raises PromptsetSourceError when unreadable.

    Uses ListObjectVersions to see S3 version ids; a role without s3:ListBucketVersions falls back to
    ListObjectsV2 and the ETag.
    """
    prefix = prefix.strip("/")
    list_prefix = f"{prefix}/" if prefix else ""
    where = f"s3://{bucket}/{list_prefix}"
    try:
        objects = list(_current_versions(s3_client, bucket, list_prefix))
    except _AccessDenied:
        objects = list(_current_objects(s3_client, bucket, list_prefix, where))
    versions = []
    for key, version, modified in objects:
        parsed = _parse_key(key[len(list_prefix) :])
        if parsed is not None:
            name, label = parsed
            versions.append(PromptsetVersion(key, version, modified, name, label))
    return sorted(versions, key=lambda v: (v.last_modified, v.key))


def new_versions(
    versions: Iterable[PromptsetVersion],
    cursor: Mapping[str, str],
    *,
    baseline_on_empty_cursor: bool = False,
) -> tuple[list[PromptsetVersion], dict[str, str]]:
    """The latest version of each promptset name whose token differs from the cursor, and the new cursor.

    Only the latest version per name is returned: evaluating intermediate uploads nobody will use again
    wastes GPU hours. A name the cursor has never seen is new. With `baseline_on_empty_cursor`, the very
    first tick (empty cursor) only records what exists, so installing the sensor launches nothing.
    """
    latest: dict[str, PromptsetVersion] = {}
    for v in versions:
        current = latest.get(v.name)
        if current is None or (v.last_modified, v.key) > (current.last_modified, current.key):
            latest[v.name] = v
    new_cursor = dict(cursor)
    new: list[PromptsetVersion] = []
    for name, v in sorted(latest.items()):
        if cursor.get(name) != v.token and not (baseline_on_empty_cursor and not cursor):
            new.append(v)
        new_cursor[name] = v.token
    return new, new_cursor


def _parse_key(relative: str) -> tuple[str, str | None] | None:
    """(name, version label) for a promptset key relative to the prefix, None for anything else."""
    parts = relative.split("/")
    if not parts[-1].endswith(".jsonl") or any(not p for p in parts):
        return None
    stem = parts[-1].removesuffix(".jsonl")
    if len(parts) == 1:
        return stem, None
    if len(parts) == 2:
        return parts[0], stem
    if len(parts) == 3:
        return parts[0], parts[1]
    return None


class _AccessDenied(Exception):
    pass


def _current_versions(s3: Any, bucket: str, prefix: str) -> Iterable[tuple[str, str, datetime]]:
    where = f"s3://{bucket}/{prefix}"
    with _errors(where, fallback_on_denied=True):
        for page in s3.get_paginator("list_object_versions").paginate(Bucket=bucket, Prefix=prefix):
            for item in page.get("Versions", []):
                if item.get("IsLatest"):
                    yield item["Key"], _version(item), item["LastModified"]


def _current_objects(s3: Any, bucket: str, prefix: str, where: str) -> Iterable[tuple[str, str, datetime]]:
    with _errors(where, fallback_on_denied=False):
        for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
            for item in page.get("Contents", []):
                yield item["Key"], item.get("ETag", "").strip('"'), item["LastModified"]


def _version(item: Mapping[str, Any]) -> str:
    version = item.get("VersionId")
    if version and version != "null":
        return version
    return item.get("ETag", "").strip('"')


class _errors:
    """Translate botocore failures into PromptsetSourceError naming `where`."""

    def __init__(self, where: str, fallback_on_denied: bool) -> None:
        self.where = where
        self.fallback = fallback_on_denied

    def __enter__(self) -> None:
        return None

    def __exit__(self, exc_type: Any, exc: BaseException | None, tb: Any) -> bool:
        if exc is None:
            return False
        from botocore.exceptions import BotoCoreError, ClientError

        if isinstance(exc, ClientError):
            error = exc.response.get("Error", {})
            code = error.get("Code", "error")
            if code in ("AccessDenied", "403") and self.fallback:
                raise _AccessDenied from None
            detail = {
                "NoSuchBucket": "the bucket does not exist",
                "AccessDenied": "access denied (the role needs s3:ListBucket on this prefix)",
            }.get(code, f"{code}: {error.get('Message', '')}".rstrip(": "))
            raise PromptsetSourceError(f"cannot list promptset versions under {self.where}: {detail}") from None
        if isinstance(exc, BotoCoreError):
            raise PromptsetSourceError(f"cannot list promptset versions under {self.where}: {exc}") from None
        return False
