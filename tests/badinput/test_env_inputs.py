"""Bad environment variables through `llmplat demo` (which reads them first, before any server starts) and
through the code location's own settings: exit 2 naming the variable, never a silently changed meaning."""

# ruff: noqa: E501 - the case table keeps one case per line

from __future__ import annotations

import os
from pathlib import Path

import pytest

from llmplat_dagster.catalog import default_catalog_path
from llmplat_dagster.settings import Settings, SettingsError

BAD_CATALOG = default_catalog_path().read_text().replace("team: quant", "team: quant team")

# (case, environment, fragment of the error)
CASES = [
    ("env-unknown", {"LLMPLAT_ENV": "staging"}, "LLMPLAT_ENV='staging' is not an environment"),
    (
        "results-s3-one-slash",
        {"LLMPLAT_RESULTS_URI": "s3:/x"},
        "LLMPLAT_RESULTS_URI 's3:/x' must look like s3://bucket/prefix",
    ),
    ("results-s3-bad-bucket", {"LLMPLAT_RESULTS_URI": "s3://Bad_Bucket/x"}, "'Bad_Bucket' is not an S3 bucket name"),
    ("results-s3-no-bucket", {"LLMPLAT_RESULTS_URI": "s3://"}, "LLMPLAT_RESULTS_URI 's3://'"),
    (
        "results-local-in-prod",
        {"LLMPLAT_ENV": "prod", "LLMPLAT_RESULTS_URI": "/data/results"},
        "prod keeps results in S3",
    ),
    (
        "promptset-uri-local",
        {"LLMPLAT_PROMPTSET_S3_URI": "/srv/promptsets"},
        "LLMPLAT_PROMPTSET_S3_URI '/srv/promptsets' must look like s3://",
    ),
    ("promptset-uri-bucket-newline", {"LLMPLAT_PROMPTSET_S3_URI": "s3://prompts\n/x"}, "is not an S3 bucket name"),
    ("trend-negative", {"LLMPLAT_TREND_NIGHTS": "-3"}, "LLMPLAT_TREND_NIGHTS=-3 must be at least 1"),
    ("trend-zero", {"LLMPLAT_TREND_NIGHTS": "0"}, "LLMPLAT_TREND_NIGHTS=0 must be at least 1"),
    ("trend-words", {"LLMPLAT_TREND_NIGHTS": "fortnight"}, "LLMPLAT_TREND_NIGHTS='fortnight' is not an integer"),
    ("cron-words", {"LLMPLAT_NIGHTLY_CRON": "nightly"}, "LLMPLAT_NIGHTLY_CRON='nightly' is not a cron expression"),
    ("cron-30-february", {"LLMPLAT_NIGHTLY_CRON": "0 2 30 2 *"}, "LLMPLAT_NIGHTLY_CRON='0 2 30 2 *'"),
    ("cron-seconds", {"LLMPLAT_NIGHTLY_CRON": "0 0 2 * * *"}, "is not a cron expression"),
    (
        "timezone-unknown",
        {"LLMPLAT_NIGHTLY_TZ": "Mars/Olympus"},
        "LLMPLAT_NIGHTLY_TZ='Mars/Olympus' is not an IANA time zone",
    ),
    ("hf-timeout-zero", {"LLMPLAT_HF_TIMEOUT_S": "0"}, "LLMPLAT_HF_TIMEOUT_S=0 must be more than 0"),
    ("hf-timeout-words", {"LLMPLAT_HF_TIMEOUT_S": "soon"}, "LLMPLAT_HF_TIMEOUT_S='soon' is not an integer"),
    (
        "revisions-no-equals",
        {"LLMPLAT_MODEL_REVISIONS": "mistral-7b-awq"},
        "LLMPLAT_MODEL_REVISIONS: expected VARIANT=VALUE",
    ),
    (
        "revisions-unknown-variant",
        {"LLMPLAT_MODEL_REVISIONS": "mistral-7b-gptq=" + "a" * 40},
        "unknown variant 'mistral-7b-gptq'",
    ),
    ("image-latest", {"LLMPLAT_VLLM_IMAGE": "vllm/vllm-openai:latest"}, "must be pinned"),
    (
        "endpoints-no-scheme",
        {"LLMPLAT_ENDPOINTS": "mistral-7b-awq=127.0.0.1:8001"},
        "mistral-7b-awq='127.0.0.1:8001' is not an http(s) URL",
    ),
    (
        "endpoints-port-out-of-range",
        {"LLMPLAT_ENDPOINTS": "mistral-7b-awq=http://127.0.0.1:99999"},
        "LLMPLAT_ENDPOINTS: mistral-7b-awq='http://127.0.0.1:99999'",
    ),
    ("endpoints-bad-json", {"LLMPLAT_ENDPOINTS": '{"mistral-7b-awq": '}, "LLMPLAT_ENDPOINTS: not JSON"),
    ("endpoints-json-not-object", {"LLMPLAT_ENDPOINTS": '{"a": 1} trailing'}, "LLMPLAT_ENDPOINTS: not JSON"),
    (
        "endpoints-missing-file",
        {"LLMPLAT_ENDPOINTS": "/nonexistent/endpoints.json"},
        "LLMPLAT_ENDPOINTS: cannot read /nonexistent/endpoints.json",
    ),
    ("endpoints-empty-pair", {"LLMPLAT_ENDPOINTS": "mistral-7b-awq="}, "LLMPLAT_ENDPOINTS: expected VARIANT=VALUE"),
    ("crd-dir-missing", {"LLMPLAT_CRD_DIR": "/nonexistent/crds"}, "LLMPLAT_CRD_DIR: /nonexistent/crds is not a folder"),
    (
        "catalog-missing",
        {"LLMPLAT_CATALOG": "/nonexistent/catalog.yaml"},
        "LLMPLAT_CATALOG='/nonexistent/catalog.yaml' is not a file",
    ),
    ("catalog-invalid", {"LLMPLAT_CATALOG": "{bad_catalog}"}, "team 'quant team' becomes the label"),
]


@pytest.fixture
def clean_env(monkeypatch, tmp_path: Path):
    for key in list(os.environ):
        if key.startswith("LLMPLAT_"):
            monkeypatch.delenv(key)
    monkeypatch.setenv("DAGSTER_HOME", str(tmp_path / "home"))
    return monkeypatch


@pytest.mark.parametrize(("case", "env", "fragment"), CASES, ids=[c[0] for c in CASES])
def test_a_bad_variable_exits_2_naming_it(llmplat, clean_env, tmp_path, case, env, fragment):
    catalog = tmp_path / "catalog.yaml"
    catalog.write_text(BAD_CATALOG)
    for key, value in env.items():
        clean_env.setenv(key, value.replace("{bad_catalog}", str(catalog)))
    result = llmplat("demo")
    assert result.code == 2, result.text
    assert fragment in result.err, result.err
    if case == "catalog-invalid":
        assert f"{catalog}:" in result.err  # file and line
    assert not (tmp_path / "home" / "llmplat" / "fleet").exists()  # no server was started


@pytest.mark.parametrize("case", [c for c in CASES if c[0] not in ("revisions-unknown-variant", "image-latest", "catalog-invalid")],
                         ids=lambda c: c[0])  # fmt: skip
def test_the_code_location_rejects_the_same_variables(case, tmp_path):
    """`dagster dev` / run pods build definitions from Settings.from_env: the same error, naming the variable."""
    _, env, fragment = case
    with pytest.raises(SettingsError) as raised:
        Settings.from_env(env)
    assert fragment in str(raised.value)
