"""Promptsets from S3 through the real boto3 client against moto's server on loopback."""

from __future__ import annotations

import json

import pytest

from llmplat_dagster.evaluation.promptsets import PromptsetError, load_promptset

pytestmark = [pytest.mark.integration, pytest.mark.timeout(60)]
BUCKET = "llm-promptsets"


@pytest.fixture
def s3(moto_s3):
    """A client for moto, and the same endpoint and fake credentials for the loader's default client."""
    if BUCKET not in [b["Name"] for b in moto_s3.list_buckets()["Buckets"]]:
        moto_s3.create_bucket(Bucket=BUCKET)
        moto_s3.put_bucket_versioning(Bucket=BUCKET, VersioningConfiguration={"Status": "Enabled"})
    return moto_s3


def _line(pid: str, max_tokens: int = 64) -> str:
    messages = [{"role": "user", "content": f"Question {pid}: what does kubectl cordon do?"}]
    return json.dumps({"id": pid, "messages": messages, "max_tokens": max_tokens, "temperature": 0.0, "tags": []})


def test_versioned_object_records_its_version_id_and_a_pinned_version_reloads(s3):
    first = s3.put_object(Bucket=BUCKET, Key="sets/nightly.jsonl", Body=_line("a") + "\n")
    second = s3.put_object(Bucket=BUCKET, Key="sets/nightly.jsonl", Body=f"{_line('a')}\n{_line('b')}\n")
    uri = f"s3://{BUCKET}/sets/nightly.jsonl"

    latest = load_promptset(uri, s3_client=s3)
    assert (latest.name, latest.source, latest.ids) == ("nightly", uri, ["a", "b"])
    assert latest.version == second["VersionId"] != first["VersionId"]

    pinned = load_promptset(uri, s3_client=s3, version_id=first["VersionId"])
    assert (pinned.ids, pinned.version) == (["a"], first["VersionId"])
    assert pinned.sha256 != latest.sha256


def test_default_client_follows_aws_endpoint_url(s3):
    s3.put_object(Bucket=BUCKET, Key="default-client.jsonl", Body=_line("x") + "\n")
    assert load_promptset(f"s3://{BUCKET}/default-client.jsonl").ids == ["x"]


def test_unversioned_bucket_falls_back_to_the_etag(s3):
    s3.create_bucket(Bucket="plain")
    put = s3.put_object(Bucket="plain", Key="p.jsonl", Body=_line("x") + "\n")
    assert load_promptset("s3://plain/p.jsonl", s3_client=s3).version == put["ETag"].strip('"')


@pytest.mark.parametrize(
    ("uri", "message"),
    [
        (f"s3://{BUCKET}/missing.jsonl", f"promptset s3://{BUCKET}/missing.jsonl not found: no object with key "),
        ("s3://no-such-bucket/p.jsonl", "promptset s3://no-such-bucket/p.jsonl not found: bucket 'no-such-bucket'"),
        (f"s3://{BUCKET}/", "must look like s3://bucket/key"),
    ],
)
def test_missing_object_names_the_uri(s3, uri, message):
    with pytest.raises(PromptsetError) as err:
        load_promptset(uri, s3_client=s3)
    assert message in str(err.value)


def test_lenient_load_from_s3_reports_bad_lines_with_the_uri(s3):
    body = "\n".join([_line("a"), "{oops", _line("b", max_tokens=2000), _line("a"), _line("c")]) + "\n"
    s3.put_object(Bucket=BUCKET, Key="bad.jsonl", Body=body)
    uri = f"s3://{BUCKET}/bad.jsonl"

    loaded = load_promptset(uri, s3_client=s3, strict=False, variant="mistral-7b-fp16")
    assert loaded.ids == ["a", "c"]
    assert [(i.line, i.prompt_id) for i in loaded.issues] == [(2, None), (3, "b"), (4, "a")]
    assert str(loaded.issues[0]).startswith(f"{uri}:2: not valid JSON")
    assert "of mistral-7b-fp16" in str(loaded.issues[1])
    assert str(loaded.issues[2]) == f"{uri}:4: prompt 'a': duplicate id 'a' (first on line 1)"

    with pytest.raises(PromptsetError, match=rf"promptset {uri}: 3 bad line\(s\)"):
        load_promptset(uri, s3_client=s3, variant="mistral-7b-fp16")
