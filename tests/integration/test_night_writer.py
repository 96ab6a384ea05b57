"""One night's partition has one writer at a time: two canaries of the same night, launched together through the
project's own instance (dagster.yaml) and run by the real daemon, never run at once; another night is not held up.

Both runs are queued before the daemon starts, so without the limit its first dequeue would launch them together.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import dagster as dg
import pytest

from llmplat_dagster.catalog import load_catalog
from llmplat_dagster.defs.keys import asset_key, op_name
from llmplat_dagster.k8s.render import vllm_args
from llmplat_dagster.sim.testing import start_sim

pytestmark = [pytest.mark.integration, pytest.mark.timeout(300)]

AWQ = load_catalog().variant("mistral-7b-awq")
BIN = Path(sys.executable).parent


def launch(env: dict, cwd: Path, nights: list[str]) -> None:
    """`dagster job launch` per night, side by side (each loads the code location), all queued on return."""
    procs = [
        subprocess.Popen(
            [
                str(BIN / "dagster"),
                "job",
                "launch",
                "-w",
                "workspace.yaml",
                "-j",
                "canary_job",
                "-o",
                op_name(asset_key(AWQ.name, "canary")),
                "--tags",
                json.dumps({"dagster/partition": night}),
            ],
            cwd=cwd,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )  # fmt: skip
        for night in nights
    ]
    for proc in procs:
        _, err = proc.communicate(timeout=180)
        assert proc.returncode == 0, err[-2000:]


def test_two_canaries_of_one_night_run_one_after_the_other(repo_root: Path, crd_dir: Path, tmp_path: Path, monkeypatch):
    home = tmp_path / "home"
    home.mkdir()
    shutil.copy(repo_root / "dagster.yaml", home / "dagster.yaml")
    monkeypatch.setenv("DAGSTER_HOME", str(home))
    dg.DagsterInstance.from_config(str(home)).dispose()  # create the storage once, before three processes race
    with start_sim(vllm_args(AWQ), time_scale=0.03) as sim:
        env = {
            **os.environ,
            "DAGSTER_HOME": str(home),
            "LLMPLAT_CRD_DIR": str(crd_dir),
            "LLMPLAT_ENDPOINTS": f"{AWQ.name}={sim.base_url}",
        }
        launch(env, repo_root, ["2026-11-28", "2026-11-28", "2026-11-29"])
        with dg.DagsterInstance.from_config(str(home)) as instance:
            assert [r.status for r in instance.get_runs()] == [dg.DagsterRunStatus.QUEUED] * 3
            daemon = subprocess.Popen(
                [str(BIN / "dagster-daemon"), "run", "-w", "workspace.yaml"],
                cwd=repo_root, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
            )  # fmt: skip
            try:
                while not all(r.is_finished for r in instance.get_runs()):
                    time.sleep(1)
            finally:
                daemon.terminate()
                daemon.wait(30)
            records = instance.get_run_records()
    assert all(r.dagster_run.status == dg.DagsterRunStatus.SUCCESS for r in records)
    by_night: dict[str, list] = {}
    for r in records:
        by_night.setdefault(r.dagster_run.tags["dagster/partition"], []).append((r.start_time, r.end_time))
    (a_start, a_end), (b_start, b_end) = sorted(by_night["2026-11-28"])
    assert b_start >= a_end, "two runs of the same night overlapped"
    (c_start, c_end) = by_night["2026-11-29"][0]
    assert c_start < a_end and c_end > a_start  # another night's run went alongside the first
