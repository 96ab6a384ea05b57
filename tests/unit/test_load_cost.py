"""Loading the code location (every run pod, code server start and UI launch does) imports no heavy library:
they are imported where they are used. bench/defs_load.py measures the cost against an empty project; this test
keeps the cause from coming back, in a fresh interpreter so nothing imported by other tests hides it."""

import json
import os
import subprocess
import sys

import pytest

HEAVY = [
    "pandas", "numpy", "scipy", "matplotlib", "pyarrow", "rapidfuzz", "httpx", "prometheus_client",
    "kubernetes", "kubernetes_validate", "jsonschema", "huggingface_hub", "dagster_aws", "boto3",
]  # fmt: skip
PRODUCTION_ONLY = {"dagster_aws", "boto3"}  # the S3 resource and IO manager of the prod environment

LOAD = """
import json, sys
import llmplat_dagster.definitions as d
defs = d.defs()
defs.get_repository_def().get_all_jobs()
print(json.dumps(sorted(m for m in json.loads(sys.argv[1]) if m in sys.modules)))
"""


def _loaded(tmp_path, **env) -> list[str]:
    environ = {**os.environ, "DAGSTER_HOME": str(tmp_path), **env}
    out = subprocess.run(
        [sys.executable, "-c", LOAD, json.dumps(HEAVY)], env=environ, capture_output=True, text=True, check=True
    )
    return json.loads(out.stdout.strip().splitlines()[-1])


def test_local_code_location_loads_no_heavy_library(tmp_path):
    assert _loaded(tmp_path, LLMPLAT_ENV="local") == []


@pytest.mark.parametrize("results", ["s3://llmplat-results/prefix"])
def test_production_loads_only_its_s3_integration(tmp_path, results):
    loaded = _loaded(tmp_path, LLMPLAT_ENV="prod", LLMPLAT_RESULTS_URI=results, AWS_REGION="us-east-1")
    assert set(loaded) <= PRODUCTION_ONLY
    assert "dagster_aws" in loaded  # prod really wires dagster-aws' S3 resource
