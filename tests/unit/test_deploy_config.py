"""deploy/: the run pod the K8sRunLauncher builds, the NetworkPolicy, the Helm values, the image, IAM, prod wiring.

The run pod is built by dagster-k8s's own functions from deploy/dagster.yaml, as K8sRunLauncher does at launch.
"""

from __future__ import annotations

import json
import re
import uuid
from pathlib import Path

import dagster as dg
import pytest
import yaml
from dagster_k8s.job import construct_dagster_k8s_job
from kubernetes import client as k8s

from llmplat_dagster.catalog import load_catalog
from llmplat_dagster.definitions import resources
from llmplat_dagster.k8s import render
from llmplat_dagster.k8s.validate import SECRET_ENV_HINTS, CrdSchemas, validate_objects
from llmplat_dagster.settings import Settings, SettingsError

DEPLOY = Path(__file__).resolve().parents[2] / "deploy"
IMAGE = "111122223333.dkr.ecr.us-east-1.amazonaws.com/llmplat-dagster:0.1.0"
ENV = {
    "DAGSTER_INSTANCE_CONFIG_MAP": "dagster-instance",
    "DAGSTER_K8S_JOB_NAMESPACE": "dagster",
    "LLMPLAT_RUN_SERVICE_ACCOUNT": "llmplat-dagster",
    "LLMPLAT_DAGSTER_IMAGE": IMAGE,
}


def instance_yaml() -> dict:
    return yaml.safe_load((DEPLOY / "dagster.yaml").read_text())


def docs(name: str) -> list[dict]:
    return [d for d in yaml.safe_load_all((DEPLOY / name).read_text()) if d]


@pytest.fixture
def run_job(monkeypatch) -> dict:
    """The run worker Job for a rollout run, as a plain manifest."""
    for key, value in ENV.items():
        monkeypatch.setenv(key, value)
    monkeypatch.setattr("dagster_k8s.launcher.load_kubernetes_config", lambda **_: None)  # no cluster here
    # The launcher as the instance builds it from deploy/dagster.yaml (its config validated by Dagster itself).
    with dg.instance_for_test(overrides={"run_launcher": instance_yaml()["run_launcher"]}) as instance:
        launcher = instance.run_launcher
    run = dg.DagsterRun(job_name="rollout_job", run_id=str(uuid.uuid4()), tags={"llmplat/variant": "mistral-7b-awq"})
    context = launcher.get_container_context_for_run(run)  # what _launch_k8s_job_with_args does
    job = construct_dagster_k8s_job(
        job_config=context.get_k8s_job_config(job_image=None, run_launcher=launcher),
        args=["dagster", "api", "execute_run", "{}"],
        job_name=f"dagster-run-{run.run_id}",
        pod_name=f"dagster-run-{run.run_id}",
        component="run_worker",
        user_defined_k8s_config=context.run_k8s_config,
        labels={"dagster/job": run.job_name, "dagster/run-id": run.run_id},
    )
    manifest = k8s.ApiClient().sanitize_for_serialization(job)
    manifest["metadata"]["namespace"] = context.namespace
    return manifest


def test_the_run_pod_has_image_account_env_from_secrets_and_resources(run_job):
    assert run_job["metadata"]["namespace"] == "dagster"
    spec = run_job["spec"]["template"]["spec"]
    (container,) = spec["containers"]
    assert container["image"] == IMAGE
    assert spec["serviceAccountName"] == "llmplat-dagster"
    assert container["envFrom"] == [
        {"configMapRef": {"name": "llmplat-dagster-env"}},
        {"secretRef": {"name": "llmplat-dagster-secrets"}},
    ]
    env = {e["name"]: e for e in container["env"]}
    assert env["DAGSTER_PG_PASSWORD"]["valueFrom"] == {
        "secretKeyRef": {"name": "dagster-postgresql-secret", "key": "postgresql-password"}
    }
    assert env["LLMPLAT_ENV"]["value"] == "prod"
    inline = [n for n, e in env.items() if "value" in e and any(h in n.upper() for h in SECRET_ENV_HINTS)]
    assert inline == []
    assert container["resources"] == {"requests": {"cpu": "500m", "memory": "1Gi"}, "limits": {"memory": "2Gi"}}
    assert container["securityContext"]["runAsNonRoot"] is True
    assert spec["nodeSelector"] == {"eks.amazonaws.com/capacityType": "ON_DEMAND"}
    assert run_job["spec"]["backoffLimit"] == 0
    assert validate_objects([run_job], CrdSchemas({}, {})) == []  # strict schema: a Job the API server accepts


def restricted_violations(pod_spec: dict) -> list[str]:
    """The Pod Security Standards' `restricted` profile (kubernetes.io/docs/concepts/security/pod-security-standards),
    the checks that apply to a pod spec: what the admission controller would reject in a `restricted` namespace."""
    pod_ctx = pod_spec.get("securityContext") or {}
    problems = []
    for c in [*pod_spec.get("initContainers", []), *pod_spec["containers"]]:
        ctx = c.get("securityContext") or {}
        name = c["name"]
        if ctx.get("allowPrivilegeEscalation") is not False:
            problems.append(f"{name}: allowPrivilegeEscalation must be false")
        if (ctx.get("capabilities") or {}).get("drop") != ["ALL"]:
            problems.append(f"{name}: capabilities must drop ALL")
        if not ctx.get("runAsNonRoot", pod_ctx.get("runAsNonRoot")):
            problems.append(f"{name}: runAsNonRoot must be true")
        if ctx.get("runAsUser", pod_ctx.get("runAsUser")) == 0:
            problems.append(f"{name}: runAsUser must not be 0")
        seccomp = (ctx.get("seccompProfile") or pod_ctx.get("seccompProfile") or {}).get("type")
        if seccomp not in ("RuntimeDefault", "Localhost"):
            problems.append(f"{name}: seccompProfile must be RuntimeDefault or Localhost")
        if ctx.get("privileged"):
            problems.append(f"{name}: privileged")
    return problems


def test_the_run_pod_meets_the_restricted_pod_security_standard(run_job):
    spec = run_job["spec"]["template"]["spec"]
    assert restricted_violations(spec) == []
    (container,) = spec["containers"]
    assert container["securityContext"]["readOnlyRootFilesystem"] is True
    # ...with a writable /tmp, and the caches pointed at it
    mounts = {m["mountPath"]: m["name"] for m in container["volumeMounts"]}
    volumes = {v["name"]: v for v in spec["volumes"]}
    assert "emptyDir" in volumes[mounts["/tmp"]]
    assert {"name": "MPLCONFIGDIR", "value": "/tmp/matplotlib"} in container["env"]
    assert spec["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}


def test_a_privileged_pod_is_what_the_restricted_check_catches():
    spec = {"containers": [{"name": "c", "securityContext": {"privileged": True}}]}
    assert len(restricted_violations(spec)) == 5


def test_the_network_policy_admits_run_pods_and_prometheus_to_port_8000_only(run_job):
    policies = docs("networkpolicy.yaml")
    assert validate_objects(policies, CrdSchemas({}, {})) == []
    assert {p["metadata"]["namespace"] for p in policies} == {"llm-baseline"}
    deny = next(p for p in policies if p["spec"]["podSelector"] == {})
    assert deny["spec"]["policyTypes"] == ["Ingress"] and "ingress" not in deny["spec"]
    run_labels = run_job["spec"]["template"]["metadata"]["labels"]
    catalog_pod = render.labels(load_catalog().variants[0])
    sources = {}
    for p in (p for p in policies if p is not deny):
        assert p["spec"]["podSelector"]["matchLabels"].items() <= catalog_pod.items()  # selects the vLLM pods
        (rule,) = p["spec"]["ingress"]
        assert rule["ports"] == [{"protocol": "TCP", "port": render.PORT}]
        (peer,) = rule["from"]
        sources[peer["namespaceSelector"]["matchLabels"]["kubernetes.io/metadata.name"]] = peer["podSelector"]
    assert set(sources) == {"dagster", "observability"}
    assert sources["dagster"]["matchLabels"].items() <= run_labels.items()  # the launcher's pods match


def test_helm_values_match_the_instance_file():
    values = yaml.safe_load((DEPLOY / "helm" / "values.yaml").read_text())
    inst = instance_yaml()
    (code,) = values["dagster-user-deployments"]["deployments"]
    assert code["dagsterApiGrpcArgs"] == ["-m", "llmplat_dagster.definitions"]
    assert {"name": "LLMPLAT_ENV", "value": "prod"} in code["env"]
    assert code["includeConfigInLaunchedRuns"] == {"enabled": True}
    launcher, run_cfg = values["runLauncher"]["config"]["k8sRunLauncher"], inst["run_launcher"]["config"]
    assert values["runLauncher"]["type"] == "K8sRunLauncher"
    assert [s["name"] for s in launcher["envSecrets"]] == run_cfg["env_secrets"]
    assert [c["name"] for c in launcher["envConfigMaps"]] == run_cfg["env_config_maps"]
    assert launcher["labels"] == run_cfg["labels"] and launcher["resources"] == run_cfg["resources"]
    assert launcher["securityContext"] == run_cfg["security_context"]
    assert launcher["volumes"] == run_cfg["volumes"] and launcher["volumeMounts"] == run_cfg["volume_mounts"]
    assert launcher["envVars"] == run_cfg["env_vars"]
    pod_spec = launcher["runK8sConfig"]["podSpecConfig"]
    assert pod_spec["securityContext"] == run_cfg["run_k8s_config"]["pod_spec_config"]["security_context"]
    (code,) = values["dagster-user-deployments"]["deployments"]
    code_pod = {**code["podSecurityContext"]}
    assert (
        restricted_violations(
            {
                "securityContext": code_pod,
                "containers": [{"name": "code-server", "securityContext": code["securityContext"]}],
            }
        )
        == []
    )
    assert launcher["runK8sConfig"]["podSpecConfig"]["serviceAccountName"] == "llmplat-dagster"
    assert values["global"]["postgresqlSecretName"] == run_cfg["postgres_password_secret"]
    assert values["postgresql"]["enabled"] is False and not values["generatePostgresqlPasswordSecret"]
    assert values["postgresql"]["postgresqlScheme"] == inst["storage"]["postgres"]["postgres_db"]["scheme"]
    assert "postgresqlPassword" not in values["postgresql"]
    logs = values["computeLogManager"]
    assert logs["type"] == inst["compute_logs"]["class"] == "S3ComputeLogManager"
    assert logs["config"]["s3ComputeLogManager"]["bucket"] == inst["compute_logs"]["config"]["bucket"]
    # The chart renders the same queue, pools, resume and retries as the instance file (and the pools and the
    # retries the local instance proves in tests/integration/test_webserver_journeys.py).
    daemon = values["dagsterDaemon"]
    assert daemon["runCoordinator"]["type"] == inst["run_coordinator"]["class"] == "QueuedRunCoordinator"
    assert _snake(values["concurrency"]) == inst["concurrency"]
    assert _snake(daemon["runMonitoring"]) == inst["run_monitoring"]
    assert _snake(daemon["runRetries"]) == inst["run_retries"]
    local = yaml.safe_load((DEPLOY.parent / "dagster.yaml").read_text())
    assert local["concurrency"] == inst["concurrency"] and local["run_retries"] == inst["run_retries"]
    assert inst["run_monitoring"]["max_resume_run_attempts"] >= 1
    assert "rollout-variant" not in (DEPLOY / "helm" / "values.yaml").read_text()  # no limit that nothing carries


def _snake(values: dict) -> dict:
    """Helm's camelCase keys as dagster.yaml spells them."""
    snake = {}
    for key, value in values.items():
        name = "".join(f"_{c.lower()}" if c.isupper() else c for c in key)
        snake[name] = _snake(value) if isinstance(value, dict) else value
    return snake


def test_no_secret_values_in_deploy_files():
    inst = instance_yaml()
    for key in ("hostname", "port", "username", "password", "db_name"):
        assert set(inst["storage"]["postgres"]["postgres_db"][key]) == {"env"}
    text = "\n".join(p.read_text() for p in DEPLOY.rglob("*") if p.is_file() and p.suffix in (".yaml", ".json", ""))
    assert not re.search(r"(?i)(password|token|secret_?key)\s*[:=]\s*['\"]?[A-Za-z0-9/+]{8,}", text)
    assert not re.search(r"AKIA[0-9A-Z]{16}|hf_[A-Za-z0-9]{20,}", text)


def test_the_image_is_pinned_by_digest_non_root_and_installs_only_hashed_wheels():
    dockerfile = (DEPLOY / "Dockerfile").read_text()
    (base,) = re.findall(r"^FROM\s+(\S+)", dockerfile, re.M)
    assert re.fullmatch(r"python:3\.11\.\d+-slim(-\w+)?@sha256:[0-9a-f]{64}", base), base  # a digest, not just a tag
    assert re.search(r"COPY deploy/requirements\.lock", dockerfile)
    assert re.search(r"pip install --require-hashes --no-deps --only-binary :all: -r requirements\.lock", dockerfile)
    assert re.search(r"pip install --no-deps --no-build-isolation --no-index \.", dockerfile)
    assert "uv" not in re.findall(r"pip install\s+(\S+)", dockerfile)  # no unhashed installer fetched first
    users = re.findall(r"^USER\s+(\S+)", dockerfile, re.M)
    assert users and users[-1].split(":")[0].isdigit() and users[-1].split(":")[0] != "0"
    assert not re.search(r"(?im)^(ARG|ENV)\s+\S*(TOKEN|SECRET|PASSWORD|KEY)", dockerfile)
    lines = (DEPLOY.parent / ".dockerignore").read_text().splitlines()
    ignore = [line.strip() for line in lines if line.strip() and not line.startswith("#")]
    assert ignore[0] == "*" and "!llmplat_dagster/" in ignore  # an allow-list: .venv, .git, state never enter
    assert "!deploy/requirements.lock" in ignore


def _pins(text: str) -> dict[str, str]:
    return dict(re.findall(r"^([A-Za-z0-9_.-]+)==([^\s\\]+)", text, re.M))


def test_the_deploy_lock_hashes_every_pin_and_matches_the_development_lock():
    """The image runs what the tests ran: the same versions, each with its sha256 (pip --require-hashes refuses a
    requirement without one), plus the build backend pyproject.toml asks for."""
    text = (DEPLOY / "requirements.lock").read_text()
    entries = re.split(r"\n(?=[A-Za-z0-9_.-]+==)", text[text.index("\n", text.index("==") - 80) :])
    assert all("--hash=sha256:" in e for e in entries if "==" in e)
    deploy, dev = _pins(text), _pins((DEPLOY.parent / "requirements.lock").read_text())
    runtime = {k: v for k, v in deploy.items() if k != "setuptools"}
    assert {k: dev.get(k) for k in runtime} == runtime  # same versions as the development lock
    assert {"dagster", "dagster-k8s", "dagster-aws", "httpx", "pandas"} <= set(runtime)
    assert not {"pytest", "ruff", "moto", "kmock"} & set(deploy)  # test tools stay out of the image
    assert "setuptools" in deploy


def test_the_s3_policy_is_limited_to_the_bucket_prefixes():
    policy = json.loads((DEPLOY / "iam" / "llmplat-dagster-s3-policy.json").read_text())

    def each(key: str) -> list[str]:
        return [v for s in policy["Statement"] for v in ([s[key]] if isinstance(s[key], str) else s[key])]

    assert all(
        r.startswith("arn:aws:s3:::llmplat-dagster-prod") and "*" not in r.split("/")[0] for r in each("Resource")
    )
    actions = set(each("Action"))
    assert actions <= {"s3:ListBucket", "s3:GetObject", "s3:PutObject", "s3:GetObjectVersion", "s3:DeleteObject"}
    deletes = [s for s in policy["Statement"] if "s3:DeleteObject" in s["Action"]]
    assert [s["Resource"] for s in deletes] == ["arn:aws:s3:::llmplat-dagster-prod/results/checkpoints/*"]
    trust = json.loads((DEPLOY / "iam" / "llmplat-dagster-trust-policy.json").read_text())
    subjects = trust["Statement"][0]["Condition"]["StringEquals"]
    assert "system:serviceaccount:dagster:llmplat-dagster" in next(v for k, v in subjects.items() if k.endswith(":sub"))


def test_prod_runs_in_cluster_with_service_dns_and_s3_results():
    res = resources(Settings(environment="prod", results_uri="s3://llmplat-dagster-prod/results"))
    assert (res["cluster"].mode, res["cluster"].in_cluster) == ("kubernetes", True)
    assert res["endpoints"].mode == "service-dns"
    assert res["parquet_io_manager"].base_uri == "s3://llmplat-dagster-prod/results"
    with pytest.raises(SettingsError, match="LLMPLAT_RESULTS_URI='/data/results'.*s3://"):
        Settings.from_env({"LLMPLAT_ENV": "prod", "LLMPLAT_RESULTS_URI": "/data/results"})
    assert (
        Settings.from_env({"LLMPLAT_RESULTS_URI": "/data/results"}).results_uri == "/data/results"
    )  # local: as before
