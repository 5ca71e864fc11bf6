"""Session-wide real servers: one SeaweedFS for the whole test session."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

os.environ.setdefault("YOLO_OFFLINE", "1")
os.environ.setdefault("RAY_AUTH_MODE", "disabled")


@pytest.fixture(scope="session")
def seaweed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SeaweedServer]:  # noqa: F821
    """A real SeaweedFS S3 server on free loopback ports, shared by the test session."""
    from flywheel.devstack.seaweedfs import seaweedfs

    with seaweedfs(Path(tmp_path_factory.mktemp("seaweedfs"))) as server:
        yield server


@pytest.fixture
def s3_lake(seaweed, request: pytest.FixtureRequest):
    """A lake on the shared SeaweedFS bucket, under a prefix unique to the test."""
    from edge_agent.lake import Lake, S3Options

    prefix = request.node.nodeid.replace("/", "_").replace(":", "_").replace("[", "_").strip("_]")
    prefix = "".join(c if c.isalnum() or c in "._-" else "_" for c in prefix)[-100:]
    return Lake(f"s3://{seaweed.bucket}/{prefix}",
                s3=S3Options(endpoint=seaweed.endpoint, access_key_id=seaweed.access_key,
                             secret_access_key=seaweed.secret_key))


@pytest.fixture
def local_lake(tmp_path: Path):
    from edge_agent.lake import Lake

    return Lake.at_path(tmp_path / "lake")


@pytest.fixture(scope="session")
def ray_cluster():
    """ONE local Ray runtime for the whole test session (2 CPUs; `ray.init` costs 5-9 s here).
    resources.ray.LocalRayCluster reuses it and leaves it running after each Dagster run."""
    import ray

    started = False
    if not ray.is_initialized():
        ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False,
                 runtime_env={"env_vars": {"YOLO_OFFLINE": "1", "RAY_AUTH_MODE": "disabled"}})
        started = True
    yield ray
    if started:
        ray.shutdown()
