"""Promptset versions under an S3 prefix, through the real boto3 client against moto's server on loopback."""

from __future__ import annotations

import socket
import uuid

import boto3
import pytest
from botocore.config import Config

from llmplat_dagster.automation.promptset_versions import (
    PromptsetSourceError,
    list_promptset_versions,
    new_versions,
)

pytestmark = [pytest.mark.integration, pytest.mark.timeout(60)]
LINE = b'{"id": "a", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 8}\n'


def _client(moto_endpoint: str, **config):
    return boto3.client(
        "s3",
        endpoint_url=moto_endpoint,
        region_name="us-east-1",
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
        config=Config(retries={"max_attempts": 1}, **config),
    )


@pytest.fixture
def s3(moto_endpoint):
    return _client(moto_endpoint)


def _bucket(s3, versioned: bool = True) -> str:
    name = f"promptsets-{uuid.uuid4().hex[:12]}"
    s3.create_bucket(Bucket=name)
    if versioned:
        s3.put_bucket_versioning(Bucket=name, VersioningConfiguration={"Status": "Enabled"})
    return name


def test_directory_layout_lists_each_version_with_name_and_label(s3):
    bucket = _bucket(s3, versioned=False)
    for key in ["sets/canary/v1/promptset.jsonl", "sets/canary/v2/promptset.jsonl", "sets/perf/2024-06-01.jsonl"]:
        s3.put_object(Bucket=bucket, Key=key, Body=LINE)
    s3.put_object(Bucket=bucket, Key="sets/canary/README.md", Body=b"not a promptset")
    s3.put_object(Bucket=bucket, Key="sets-old/canary/v0/promptset.jsonl", Body=LINE)  # outside the prefix
    versions = list_promptset_versions(s3, bucket, "sets/")
    assert sorted((v.name, v.label, v.key) for v in versions) == [
        ("canary", "v1", "sets/canary/v1/promptset.jsonl"),
        ("canary", "v2", "sets/canary/v2/promptset.jsonl"),
        ("perf", "2024-06-01", "sets/perf/2024-06-01.jsonl"),
    ]
    assert all(v.version_id_or_etag and v.last_modified for v in versions)


def test_flat_layout_in_a_versioned_bucket_uses_the_current_version_id(s3):
    bucket = _bucket(s3)
    s3.put_object(Bucket=bucket, Key="p/nightly.jsonl", Body=LINE)
    second = s3.put_object(Bucket=bucket, Key="p/nightly.jsonl", Body=LINE + LINE)
    s3.put_object(Bucket=bucket, Key="p/gone.jsonl", Body=LINE)
    s3.delete_object(Bucket=bucket, Key="p/gone.jsonl")
    (version,) = list_promptset_versions(s3, bucket, "p")
    assert (version.name, version.label, version.version_id_or_etag) == ("nightly", None, second["VersionId"])


def test_a_new_upload_is_detected_once(s3):
    bucket = _bucket(s3)
    s3.put_object(Bucket=bucket, Key="p/nightly.jsonl", Body=LINE)
    s3.put_object(Bucket=bucket, Key="p/canary/v1/promptset.jsonl", Body=LINE)
    first, cursor = new_versions(list_promptset_versions(s3, bucket, "p"), {})
    assert sorted(v.name for v in first) == ["canary", "nightly"]

    again, same = new_versions(list_promptset_versions(s3, bucket, "p"), cursor)
    assert again == [] and same == cursor

    upload = s3.put_object(Bucket=bucket, Key="p/nightly.jsonl", Body=LINE + LINE)
    s3.put_object(Bucket=bucket, Key="p/canary/v2/promptset.jsonl", Body=LINE)
    new, cursor2 = new_versions(list_promptset_versions(s3, bucket, "p"), cursor)
    assert {v.name: v.token for v in new} == {
        "canary": f"p/canary/v2/promptset.jsonl@{new[0].version_id_or_etag}",
        "nightly": f"p/nightly.jsonl@{upload['VersionId']}",
    }
    assert cursor2 == {v.name: v.token for v in new}


def test_missing_bucket_is_a_clear_error(s3):
    with pytest.raises(PromptsetSourceError, match=r"s3://no-such-bucket-x/sets/: the bucket does not exist"):
        list_promptset_versions(s3, "no-such-bucket-x", "sets")


def test_an_unreachable_endpoint_is_a_clear_error():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    s3 = _client(f"http://127.0.0.1:{port}", connect_timeout=1, read_timeout=1)
    with pytest.raises(PromptsetSourceError, match=r"cannot list promptset versions under s3://b/p/: Could not"):
        list_promptset_versions(s3, "b", "p")


class _Paginator:
    def __init__(self, pages):
        self.pages = pages

    def paginate(self, **kwargs):
        yield from self.pages(kwargs)


class _DeniedVersions:
    """ListObjectVersions denied (no s3:ListBucketVersions), ListObjectsV2 allowed or denied."""

    def __init__(self, s3, list_allowed: bool):
        self.s3, self.list_allowed = s3, list_allowed

    def get_paginator(self, name):
        from botocore.exceptions import ClientError

        def denied(kwargs):
            raise ClientError({"Error": {"Code": "AccessDenied", "Message": "Access Denied"}}, name)
            yield  # pragma: no cover

        if name == "list_object_versions" or not self.list_allowed:
            return _Paginator(denied)
        return self.s3.get_paginator(name)


def test_without_list_versions_permission_falls_back_to_etags(s3):
    bucket = _bucket(s3, versioned=False)
    put = s3.put_object(Bucket=bucket, Key="p/nightly.jsonl", Body=LINE)
    (version,) = list_promptset_versions(_DeniedVersions(s3, list_allowed=True), bucket, "p")
    assert version.version_id_or_etag == put["ETag"].strip('"')


def test_access_denied_is_a_clear_error(s3):
    with pytest.raises(PromptsetSourceError, match=r"under s3://b/p/: access denied"):
        list_promptset_versions(_DeniedVersions(s3, list_allowed=False), "b", "p")
