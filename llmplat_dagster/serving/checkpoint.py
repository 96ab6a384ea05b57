"""Rows a canary has already written, so a run cut short resumes instead of starting over.

Locally an append-only JSON-lines file; on S3 (production, where the run pod that wrote them may be gone) one
small object per finished row, so no object is ever rewritten and a killed pod loses at most the row in flight.

A checkpoint belongs to one measurement: the variant, the night, the promptset version, what was rolled out
(model revision and manifest hash) and the run's purpose. A re-rolled variant or another purpose gets a fresh
checkpoint, so old rows are never stamped with a new revision. Names are injective: a name that had to be
shortened or cleaned carries a hash of the original, so two ids never share one object.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict
from pathlib import Path

from llmplat_dagster.s3uri import is_s3, parse_s3_uri
from llmplat_dagster.serving.results import RequestResult

MAX_NAME = 64


class CheckpointError(RuntimeError):
    """Rows could not be read back or removed; the message names the location and the objects."""


def safe_name(text: str, limit: int = MAX_NAME) -> str:
    """`text` itself when it is a short, plain file name; else a readable prefix plus a hash of the original."""
    clean = "".join(c if c.isalnum() or c in "-_." else "_" for c in text)
    if clean == text and len(text) <= limit and text not in ("", ".", ".."):
        return text
    digest = hashlib.sha256(text.encode()).hexdigest()[:16]
    return f"{clean[: limit - len(digest) - 1]}-{digest}"


def checkpoint_key(*, night: str, promptset_version: str, model_revision: str, manifest_hash: str, purpose: str) -> str:
    """One measurement's key: a new rollout, promptset version or purpose never resumes another's rows."""
    return safe_name(f"{purpose}-{night}-{promptset_version}-{model_revision[:12]}-{manifest_hash}", 120)


class Checkpoint:
    """Finished rows of one measurement (see `checkpoint_key`); only ok rows are reused."""

    def __init__(self, root: str | Path, variant: str, key: str, s3_client=None) -> None:
        root = str(root)
        self.s3 = is_s3(root)
        name = f"canary-{safe_name(key, 128)}"
        if self.s3:
            bucket, prefix = parse_s3_uri(root, what="checkpoint location")
            self.bucket, self.prefix = bucket, f"{prefix.strip('/')}/{safe_name(variant)}/{name}/".lstrip("/")
            self.location = f"s3://{self.bucket}/{self.prefix}"
            self._client = s3_client
        else:
            self.path = Path(root) / safe_name(variant) / f"{name}.jsonl"
            self.location = str(self.path)

    @property
    def client(self):
        if self._client is None:
            import boto3

            self._client = boto3.client("s3")
        return self._client

    def _keys(self) -> list[str]:
        pages = self.client.get_paginator("list_objects_v2").paginate(Bucket=self.bucket, Prefix=self.prefix)
        return [item["Key"] for page in pages for item in page.get("Contents", [])]

    def _lines(self) -> list[str]:
        if not self.s3:
            return self.path.read_text().splitlines() if self.path.exists() else []
        return [self.client.get_object(Bucket=self.bucket, Key=k)["Body"].read().decode() for k in self._keys()]

    def ok_rows(self) -> list[RequestResult]:
        rows = []
        for line in self._lines():
            try:
                row = RequestResult(**json.loads(line))
            except (ValueError, TypeError):
                continue  # a line cut by the kill that interrupted the run
            if row.ok:
                rows.append(row)
        return rows

    def append(self, row: RequestResult) -> None:
        text = json.dumps(asdict(row))
        if self.s3:
            key = f"{self.prefix}{safe_name(row.prompt_id)}.json"
            self.client.put_object(Bucket=self.bucket, Key=key, Body=text.encode())
            return
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with self.path.open("a") as fh:
            fh.write(text + "\n")

    def clear(self) -> None:
        """Remove the rows once the results are stored. DeleteObjects answers 200 even when objects were not
        deleted (AccessDenied without s3:DeleteObject): its per-object `Errors` are read and raised."""
        if not self.s3:
            self.path.unlink(missing_ok=True)
            return
        keys = self._keys()
        errors = []
        for i in range(0, len(keys), 1000):  # DeleteObjects takes at most 1000 keys
            batch = [{"Key": k} for k in keys[i : i + 1000]]
            answer = self.client.delete_objects(Bucket=self.bucket, Delete={"Objects": batch, "Quiet": True})
            errors += answer.get("Errors", [])
        if errors:
            first = errors[0]
            raise CheckpointError(
                f"{len(errors)} of {len(keys)} checkpoint objects under {self.location} were not deleted "
                f"(first: {first.get('Key')}: {first.get('Code')}: {first.get('Message')}); the run pod's role "
                "needs s3:DeleteObject there (deploy/iam/llmplat-dagster-s3-policy.json)"
            )
