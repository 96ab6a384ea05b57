"""Canary checkpoints: a new process (a replacement run pod) finds the ok rows a killed one wrote."""

from __future__ import annotations

import fnmatch
import json

import pytest

from llmplat_dagster.serving.checkpoint import Checkpoint, CheckpointError, checkpoint_key, safe_name
from llmplat_dagster.serving.results import RequestResult

pytestmark = [pytest.mark.integration, pytest.mark.timeout(60)]


def _rows() -> list[RequestResult]:
    ok = [RequestResult(prompt_id=f"p/{i}", variant="v", status="ok", ttft_s=0.1 * i) for i in range(3)]
    return [*ok, RequestResult(prompt_id="p/9", variant="v", status="error", error="HTTP 503")]


@pytest.fixture
def s3(moto_s3):
    moto_s3.create_bucket(Bucket="results")
    return moto_s3


@pytest.mark.parametrize("where", ["local", "s3"])
def test_ok_rows_survive_the_writer_and_clear_removes_them(tmp_path, where, request):
    root = str(tmp_path / "ckpt") if where == "local" else "s3://results/prod/checkpoints"
    if where == "s3":
        request.getfixturevalue("s3")
    writer = Checkpoint(root, "mistral-7b-awq", "2026-11-28-sha256:abc")
    for row in _rows():
        writer.append(row)
    reader = Checkpoint(root, "mistral-7b-awq", "2026-11-28-sha256:abc")  # a fresh process
    assert sorted(r.prompt_id for r in reader.ok_rows()) == ["p/0", "p/1", "p/2"]
    assert reader.ok_rows()[0].ttft_s is not None
    assert Checkpoint(root, "mistral-7b-awq", "2026-11-29-sha256:abc").ok_rows() == []  # another night
    reader.clear()
    assert Checkpoint(root, "mistral-7b-awq", "2026-11-28-sha256:abc").ok_rows() == []
    if where == "s3":
        assert reader.location.startswith("s3://results/prod/checkpoints/mistral-7b-awq/canary-2026-11-28")


def test_ids_that_differ_after_64_characters_or_only_in_punctuation_keep_their_own_objects(s3):
    long = "q" * 70
    ids = [long + "-a", long + "-b", "p/1", "p_1", "p 1", "id\n", "id"]
    writer = Checkpoint("s3://results/prod/checkpoints", "mistral-7b-awq", "night-long-ids")
    for pid in ids:
        writer.append(RequestResult(prompt_id=pid, variant="v", status="ok"))
    assert sorted(r.prompt_id for r in writer.ok_rows()) == sorted(ids)
    listed = s3.list_objects_v2(Bucket="results", Prefix=writer.prefix)["Contents"]
    assert len(listed) == len(ids) and all(len(o["Key"].rsplit("/", 1)[1]) <= 64 + 5 for o in listed)


@pytest.mark.parametrize(
    ("a", "b"),
    [("q" * 64 + "1", "q" * 64 + "2"), ("p/1", "p_1"), ("id\n", "id"), ("a b", "a_b"), ("é", "_"), ("", "_")],
)
def test_safe_names_never_collide_and_stay_short(a, b):
    assert safe_name(a) != safe_name(b)
    assert len(safe_name(a)) <= 64 and len(safe_name(b)) <= 64
    assert all(c.isalnum() or c in "-_." for c in safe_name(a) + safe_name(b))


def test_plain_short_names_are_kept_readable():
    assert safe_name("mistral-7b-awq") == "mistral-7b-awq" and safe_name("canary.0042") == "canary.0042"


def test_the_key_changes_with_the_rollout_and_the_purpose():
    base = dict(night="2026-11-28", promptset_version="sha256:abc", model_revision="1" * 40, manifest_hash="h1")
    keys = {
        checkpoint_key(**base, purpose="nightly"),
        checkpoint_key(**{**base, "model_revision": "2" * 40}, purpose="nightly"),
        checkpoint_key(**{**base, "manifest_hash": "h2"}, purpose="nightly"),
        checkpoint_key(**base, purpose="revisions-0123"),
        checkpoint_key(**{**base, "night": "2026-11-29"}, purpose="nightly"),
    }
    assert len(keys) == 5


class _RefusingS3:
    """An S3 client whose DeleteObjects answers 200 with per-object AccessDenied, as S3 does without
    s3:DeleteObject (the response is a success; only its `Errors` list says nothing was deleted)."""

    def __init__(self, real):
        self.real = real

    def __getattr__(self, name):
        return getattr(self.real, name)

    def delete_objects(self, Bucket, Delete):
        keys = [o["Key"] for o in Delete["Objects"]]
        return {"Errors": [{"Key": k, "Code": "AccessDenied", "Message": "Access Denied"} for k in keys]}


def test_clear_reads_s3s_per_object_errors_and_names_them(s3):
    writer = Checkpoint("s3://results/prod/checkpoints", "mistral-7b-awq", "refused", s3_client=_RefusingS3(s3))
    for row in _rows():
        writer.append(row)
    with pytest.raises(CheckpointError) as raised:
        writer.clear()
    message = str(raised.value)
    assert "4 of 4 checkpoint objects under s3://results/prod/checkpoints/mistral-7b-awq/canary-refused/" in message
    assert "AccessDenied" in message and "s3:DeleteObject" in message
    assert len(writer.ok_rows()) == 3  # nothing pretended gone


def _allowed(policy: dict, action: str, resource: str, prefix: str | None = None) -> bool:
    """IAM's Allow evaluation for the statements this policy uses (Action, Resource, StringLike s3:prefix)."""
    for st in policy["Statement"]:
        actions = [st["Action"]] if isinstance(st["Action"], str) else st["Action"]
        resources = [st["Resource"]] if isinstance(st["Resource"], str) else st["Resource"]
        if action not in actions or not any(fnmatch.fnmatchcase(resource, r) for r in resources):
            continue
        like = st.get("Condition", {}).get("StringLike", {}).get("s3:prefix")
        if like is None or (prefix is not None and any(fnmatch.fnmatchcase(prefix, p) for p in like)):
            return True
    return False


def test_the_prod_s3_policy_grants_every_call_a_checkpoint_makes(s3, repo_root):
    """The calls are recorded from the real Checkpoint code against moto, then checked against deploy/iam."""
    policy = json.loads((repo_root / "deploy" / "iam" / "llmplat-dagster-s3-policy.json").read_text())
    s3.create_bucket(Bucket="llmplat-dagster-prod")
    calls = []

    def record(params, model, **_):
        calls.append((model.name, dict(params)))

    s3.meta.events.register("provide-client-params.s3.*", record)
    checkpoint = Checkpoint("s3://llmplat-dagster-prod/results/checkpoints", "mistral-7b-awq", "k", s3_client=s3)
    for row in _rows():
        checkpoint.append(row)
    checkpoint.ok_rows()
    checkpoint.clear()
    wanted = []
    for name, params in calls:
        bucket = f"arn:aws:s3:::{params['Bucket']}"
        if name == "ListObjectsV2":
            wanted.append(("s3:ListBucket", bucket, params["Prefix"]))
        elif name == "DeleteObjects":
            wanted += [("s3:DeleteObject", f"{bucket}/{o['Key']}", None) for o in params["Delete"]["Objects"]]
        else:
            wanted.append((f"s3:{name}", f"{bucket}/{params['Key']}", None))
    assert {w[0] for w in wanted} == {"s3:ListBucket", "s3:PutObject", "s3:GetObject", "s3:DeleteObject"}
    assert [w for w in wanted if not _allowed(policy, *w)] == []
    assert not _allowed(policy, "s3:DeleteObject", "arn:aws:s3:::llmplat-dagster-prod/results/llm_baseline/x.parquet")
