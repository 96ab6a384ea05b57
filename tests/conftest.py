from __future__ import annotations

import os
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="session")
def repo_root() -> Path:
    return ROOT


@pytest.fixture(scope="session")
def crd_dir() -> Path:
    """Upstream CRDs live outside the project (LLMPLAT_CRD_DIR, else ../shared/crds); missing is a failure."""
    candidates = [p for p in os.environ.get("LLMPLAT_CRD_DIR", "").split(os.pathsep) if p]
    candidates.append(str(ROOT.parent / "shared" / "crds"))
    for c in candidates:
        if Path(c, "keda.sh_scaledobjects.yaml").exists():
            return Path(c)
    pytest.fail(f"no CRD folder with the KEDA and ServiceMonitor CRDs; looked in {candidates}; set LLMPLAT_CRD_DIR")
