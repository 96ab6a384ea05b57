"""Pytest fixtures that start the simulator in-process; import them into a test module or conftest:

from tests.integration.sim_fixtures import sim  # noqa: F401
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from llmplat_dagster.sim.testing import RunningSim, start_sim

FAST = {"time_scale": 0.02}


@pytest.fixture
def sim() -> Iterator[RunningSim]:
    """A fast FP16-like simulator serving ``sim-model``."""
    with start_sim(**FAST) as running:
        yield running
