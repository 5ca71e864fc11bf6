"""`make demo-cluster`'s engines on this machine: SeaweedFS as S3 (the lake and LanceDB), PostgreSQL
for the Dagster instance (deploy/dagster.yaml), and a Ray head with one worker carrying the `train`
resource (separate `ray start` processes). Every one on free loopback ports and temp dirs, stopped
when the command exits. The command gets the cluster deployment's environment, as a Helm release
and the RayCluster pods would carry it (resources/deployments.py reads it).

    python -m jobs.cluster_env python -m jobs.demo --deployment cluster --turns 1

The engines are flywheel/devstack (the ones the tests and benchmarks start too).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
# deploy/dagster.yaml reads a password; the test PostgreSQL trusts loopback and ignores it
PG_PASSWORD = "trust-auth-ignores-it"
TRAIN_CPUS = 2  # the training task reserves TrainConfig.num_cpus (2): the worker must offer them


def cluster_settings(s3: dict[str, str], bucket: str, pg: dict[str, str], dagster_home: Path,
                     prefix: str = "flywheel") -> dict[str, str]:
    """The cluster deployment's settings for a lake on `bucket` and an instance in `dagster_home`."""
    return {**s3, **pg, "DAGSTER_PG_PASSWORD": PG_PASSWORD, "DAGSTER_HOME": str(dagster_home),
            "FLYWHEEL_DEPLOYMENT": "cluster", "FLYWHEEL_LAKE_URI": f"s3://{bucket}/{prefix}",
            "YOLO_OFFLINE": "1", "RAY_AUTH_MODE": "disabled"}


def cluster_lake(env: dict[str, str]):
    """The deployment's S3 lake, as its settings name it."""
    from edge_agent.lake import Lake, S3Options

    return Lake(env["FLYWHEEL_LAKE_URI"], s3=S3Options(
        endpoint=env["AWS_ENDPOINT_URL"], access_key_id=env["AWS_ACCESS_KEY_ID"],
        secret_access_key=env["AWS_SECRET_ACCESS_KEY"]))


def release_secrets(lake, keys_dir: Path, channel: str = "stable") -> dict[str, str]:
    """What a platform team does once, offline: the release keys, the channel created with the root
    key; the runs get only the online keys, as secrets (the cluster's EnvReleaseSigner)."""
    from flywheel.release.keys import ONLINE_ROLES, env_var, keygen, load_keys
    from flywheel.release.repository import open_channel

    paths = keygen(keys_dir)
    open_channel(lake, channel, load_keys(keys_dir), create=True)
    return {env_var(role): paths[role].read_text() for role in ONLINE_ROLES}


def instance_home(path: Path) -> Path:
    """DAGSTER_HOME holding the cluster deployment's instance config (PostgreSQL)."""
    path.mkdir(parents=True, exist_ok=True)
    shutil.copy(REPO_ROOT / "deploy" / "dagster.yaml", path / "dagster.yaml")
    return path


@contextmanager
def cluster_engines(work_dir: Path | None = None) -> Iterator[dict[str, str]]:
    """Start the engines; yields the environment a process of the cluster deployment needs."""
    from flywheel.devstack.postgres import postgres
    from flywheel.devstack.ray_nodes import ray_nodes
    from flywheel.devstack.seaweedfs import seaweedfs

    with ExitStack() as stack:
        if work_dir is None:
            work_dir = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="flywheel-cluster-")))
        s3 = stack.enter_context(seaweedfs(work_dir / "seaweedfs"))
        pg = stack.enter_context(postgres())
        env = cluster_settings(s3.env(), s3.bucket, pg.env(), instance_home(work_dir / "dagster_home"))
        env.update(release_secrets(cluster_lake(env), work_dir / "release_keys"))
        # the worker's tasks (training) read the lake: it gets the deployment's settings too
        nodes = stack.enter_context(ray_nodes(workers=1, worker_cpus=TRAIN_CPUS,
                                              worker_resources=[{"train": 1.0}], extra_env=env))
        print(f"engines up: S3 {s3.endpoint} (bucket {s3.bucket}), PostgreSQL "
              f"{pg.host}:{pg.port}/{pg.db}, Ray {nodes.address} (dashboard {nodes.jobs_url})",
              flush=True)
        yield {**env, "FLYWHEEL_RAY_ADDRESS": nodes.address, "FLYWHEEL_RAY_JOBS_URL": nodes.jobs_url}


def main(argv: list[str]) -> int:
    if not argv:
        print(__doc__, file=sys.stderr)
        return 2
    with cluster_engines() as env:
        return subprocess.run(argv, cwd=REPO_ROOT, env={**os.environ, **env}, check=False).returncode


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
