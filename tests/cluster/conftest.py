"""The cluster deployment's real engines on this machine: PostgreSQL for the Dagster instance, a
multi-node Ray cluster (head + workers as separate `ray start` processes). Module-scoped: each costs
tens of seconds to start, and only these modules need them."""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def pg_server() -> Iterator:
    from flywheel.devstack.postgres import pg_bindir, postgres

    if pg_bindir() is None:
        pytest.skip("PostgreSQL server not installed (Debian `postgresql`; `make test` installs it)")
    with postgres() as server:
        yield server


@pytest.fixture(scope="module")
def pg_home(pg_server, tmp_path_factory) -> Iterator[Path]:
    """DAGSTER_HOME holding deploy/dagster.yaml (the cluster deployment's instance), with the
    connection it reads from the environment set for this module."""
    home = tmp_path_factory.mktemp("dagster_home_pg")
    shutil.copy(ROOT / "deploy" / "dagster.yaml", home / "dagster.yaml")
    env = {**pg_server.env(), "DAGSTER_PG_PASSWORD": "trust-auth-ignores-it", "DAGSTER_HOME": str(home)}
    saved = {k: os.environ.get(k) for k in env}
    os.environ.update(env)
    yield home
    for k, v in saved.items():
        if v is None:
            os.environ.pop(k, None)
        else:
            os.environ[k] = v


@pytest.fixture(scope="module")
def pg_instance(pg_home):
    import dagster as dg

    with dg.DagsterInstance.get() as instance:  # DAGSTER_HOME=pg_home
        assert type(instance.run_storage).__name__ == "PostgresRunStorage"
        yield instance
