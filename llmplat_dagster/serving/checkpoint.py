"""Rows a canary has already written, so a run cut short resumes instead of starting over.

Locally an append-only JSON-lines file; on S3 (production, where the run pod that wrote them may be gone) one
small object per finished row, so no object is ever rewritten and a killed pod loses at most the row in flight.
"""

import json
from dataclasses import asdict
from pathlib import Path

from llmplat_dagster.s3uri import is_s3, parse_s3_uri
from llmplat_dagster.serving.results import RequestResult


def _safe(text: str) -> str:
    return "".join(c if c.isalnum() or c in "-_." else "_" for c in text)[:64]


class Checkpoint:
    """Finished rows keyed by variant and run key (night + promptset version); only ok rows are reused."""

    def __init__(self, root: str | Path, variant: str, key: str, s3_client=None) -> None:
        root = str(root)
        self.s3 = is_s3(root)
        if self.s3:
            bucket, prefix = parse_s3_uri(root, what="checkpoint location")
            self.bucket, self.prefix = bucket, f"{prefix.strip('/')}/{variant}/canary-{_safe(key)}/".lstrip("/")
            self.location = f"s3://{self.bucket}/{self.prefix}"
            self._client = s3_client
        else:
            self.path = Path(root) / variant / f"canary-{_safe(key)}.jsonl"
            self.location = str(self.path)

    @property
    def client(self):
        if self._client is None:
            import boto3

            self._client = boto3.client("s3")
        return self._client

    def _lines(self) -> list[str]:
        if not self.s3:
            return self.path.read_text().splitlines() if self.path.exists() else []
        lines = []
        for page in self.client.get_paginator("list_objects_v2").paginate(Bucket=self.bucket, Prefix=self.prefix):
            for item in page.get("Contents", []):
                lines.append(self.client.get_object(Bucket=self.bucket, Key=item["Key"])["Body"].read().decode())
        return lines

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
            key = f"{self.prefix}{_safe(row.prompt_id)}.json"
            self.client.put_object(Bucket=self.bucket, Key=key, Body=text.encode())
            return
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with self.path.open("a") as fh:
            fh.write(text + "\n")

    def clear(self) -> None:
        if not self.s3:
            self.path.unlink(missing_ok=True)
            return
        for page in self.client.get_paginator("list_objects_v2").paginate(Bucket=self.bucket, Prefix=self.prefix):
            keys = [{"Key": item["Key"]} for item in page.get("Contents", [])]
            if keys:
                self.client.delete_objects(Bucket=self.bucket, Delete={"Objects": keys})
