from __future__ import annotations

import pytest

from flywheel.sim.world import StoreWorld


@pytest.fixture(scope="session")
def world() -> StoreWorld:
    """One world for the sim tests: asset rendering is paid once."""
    return StoreWorld(seed=0)
