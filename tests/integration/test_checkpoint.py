"""Canary checkpoints: a new process (a replacement run pod) finds the ok rows a killed one wrote."""

from __future__ import annotations

import pytest

from llmplat_dagster.serving.checkpoint import Checkpoint
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
