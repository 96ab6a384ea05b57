"""The production instance (deploy/dagster.yaml) for real: PostgreSQL storage, S3 compute logs, S3 results.

PostgreSQL is a real server (tests/integration/postgres_fixtures.py); S3 is moto in server mode on loopback,
reached through AWS_ENDPOINT_URL exactly as boto3 reaches AWS.
"""

from __future__ import annotations

import io
import shutil
import sys
from pathlib import Path

import dagster as dg
import pandas as pd
import psycopg2
import pytest

from llmplat_dagster.definitions import build_definitions, resources
from llmplat_dagster.settings import Settings
from tests.integration.postgres_fixtures import pg_env, postgres_url  # noqa: F401 - the fixture

pytestmark = [pytest.mark.integration, pytest.mark.timeout(120)]

DEPLOY = Path(__file__).resolve().parents[2] / "deploy"
BUCKET = "llmplat-results"


@pytest.fixture
def s3(moto_s3):
    if BUCKET not in [b["Name"] for b in moto_s3.list_buckets()["Buckets"]]:
        moto_s3.create_bucket(Bucket=BUCKET)
    return moto_s3


@pytest.fixture
def prod_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, postgres_url: str, s3) -> Path:  # noqa: F811
    """$DAGSTER_HOME holding deploy/dagster.yaml, with the environment the Helm chart and Secrets would give."""
    env = {
        **pg_env(postgres_url),
        "DAGSTER_HOME": str(tmp_path),
        "DAGSTER_INSTANCE_CONFIG_MAP": "dagster-instance",
        "DAGSTER_K8S_JOB_NAMESPACE": "dagster",
        "LLMPLAT_RUN_SERVICE_ACCOUNT": "llmplat-dagster",
        "LLMPLAT_DAGSTER_IMAGE": "123456789012.dkr.ecr.us-east-1.amazonaws.com/llmplat-dagster:0.1.0",
        "LLMPLAT_LOGS_BUCKET": BUCKET,
        "LLMPLAT_LOGS_PREFIX": "compute-logs",
    }
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    # K8sRunLauncher loads the in-cluster config when the instance starts (it must, to resume runs); none here.
    monkeypatch.setattr("dagster_k8s.launcher.load_kubernetes_config", lambda **_: None)
    shutil.copy(DEPLOY / "dagster.yaml", tmp_path / "dagster.yaml")
    return tmp_path


def test_a_job_runs_on_the_production_instance_and_lands_in_postgres(prod_home, postgres_url, crd_dirs, s3):  # noqa: F811
    with dg.DagsterInstance.from_config(str(prod_home)) as instance:
        assert type(instance.run_storage).__name__ == "PostgresRunStorage"
        assert type(instance.event_log_storage).__name__ == "PostgresEventLogStorage"
        assert type(instance.schedule_storage).__name__ == "PostgresScheduleStorage"
        assert type(instance.compute_log_manager).__name__ == "S3ComputeLogManager"
        limits = instance.get_concurrency_config().run_queue_config.tag_concurrency_limits
        assert {"key": "dagster/partition", "value": {"applyLimitPerUniqueValue": True}, "limit": 1} in limits
        # Dagster itself refuses resume attempts with a launcher that cannot resume; K8sRunLauncher can.
        assert instance.run_launcher.supports_resume_run and instance.run_monitoring_max_resume_run_attempts == 2
        assert instance.run_retries_enabled and not instance.run_retries_retry_on_asset_or_op_failure
        assert instance.get_concurrency_config().pool_config.pool_granularity.value == "run"
        defs = build_definitions(Settings(environment="prod", crd_dirs=crd_dirs, resolve_revisions=False))
        result = defs.resolve_job_def("manifests_job").execute_in_process(instance=instance)
        assert result.success
        run_id = result.run_id

    with psycopg2.connect(postgres_url) as conn, conn.cursor() as cur:  # straight from the server
        cur.execute("SELECT status FROM runs WHERE run_id = %s", (run_id,))
        assert cur.fetchone() == ("SUCCESS",)
        cur.execute("SELECT dagster_event_type, count(*) FROM event_logs WHERE run_id = %s GROUP BY 1", (run_id,))
        events = dict(cur.fetchall())
    conn.close()
    assert events["ASSET_MATERIALIZATION"] == 5 and events["ASSET_CHECK_EVALUATION"] == 5
    assert events["PIPELINE_SUCCESS"] == 1, events  # the run-success event keeps its legacy name in the table

    with dg.DagsterInstance.from_config(str(prod_home)) as again:  # a second process would see the same
        assert again.get_run_by_id(run_id).is_success
        key = dg.AssetKey(["llm_baseline", "mistral-7b-awq", "manifests"])
        assert again.get_latest_materialization_event(key).run_id == run_id


def test_the_instance_names_a_missing_variable(prod_home, monkeypatch):
    monkeypatch.delenv("DAGSTER_PG_HOST")
    with pytest.raises(Exception, match="DAGSTER_PG_HOST"), dg.DagsterInstance.from_config(str(prod_home)) as i:
        i.get_runs(limit=1)


def test_compute_logs_go_to_s3(prod_home, s3):
    with dg.DagsterInstance.from_config(str(prod_home)) as instance:
        manager = instance.compute_log_manager
        with manager.capture_logs(["llmplat-test", "step"]):
            sys.stdout.write("hello from a run worker\n")
            sys.stdout.flush()
    keys = [o["Key"] for o in s3.list_objects_v2(Bucket=BUCKET, Prefix="compute-logs/").get("Contents", [])]
    out = [k for k in keys if "llmplat-test" in k and k.endswith(".out")]
    assert out, keys
    assert b"hello from a run worker" in s3.get_object(Bucket=BUCKET, Key=out[0])["Body"].read()


@dg.asset(key=["llm_baseline", "test", "table"], io_manager_key="parquet_io_manager")
def table() -> pd.DataFrame:
    return pd.DataFrame({"variant": ["mistral-7b-awq", "mistral-7b-fp16"], "ttft_s": [0.21, 0.34]})


@dg.asset(key=["llm_baseline", "test", "rows"], ins={"table": dg.AssetIn(["llm_baseline", "test", "table"])})
def rows(table: pd.DataFrame) -> int:
    return len(table)


def test_prod_results_round_trip_through_s3(s3, tmp_path, monkeypatch):
    monkeypatch.setenv("DAGSTER_HOME", str(tmp_path))
    io_manager = resources(Settings(environment="prod", results_uri=f"s3://{BUCKET}/results"))["parquet_io_manager"]
    result = dg.materialize([table, rows], resources={"parquet_io_manager": io_manager})
    assert result.success and result.output_for_node("llm_baseline__test__rows") == 2
    body = s3.get_object(Bucket=BUCKET, Key="results/llm_baseline/test/table.parquet")["Body"].read()
    pd.testing.assert_frame_equal(pd.read_parquet(io.BytesIO(body)), table())


def test_prod_results_without_a_uri_fail_naming_the_variable(s3, monkeypatch):
    monkeypatch.delenv("LLMPLAT_RESULTS_URI", raising=False)
    io_manager = resources(Settings(environment="prod"))["parquet_io_manager"]
    with pytest.raises(Exception, match="LLMPLAT_RESULTS_URI"):
        dg.materialize([table], resources={"parquet_io_manager": io_manager})
