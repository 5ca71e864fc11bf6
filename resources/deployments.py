"""Resources per deployment, chosen by one setting: FLYWHEEL_DEPLOYMENT = local | cluster.

local:   file lake under the repo (var/lake), LocalRay, SQLite Dagster instance, steps in process.
cluster: S3 lake, a Ray cluster by address (KubeRay, deploy/raycluster.yaml), Postgres instance
         (deploy/dagster.yaml), every step a Ray job (dagster-ray's ray_executor); endpoints and
         secrets from EnvVar.

The resources several stages share (lake, ray, index, encoder, the lineage IO manager) are defined
here, once per deployment. A stage takes the ones it needs with `deployment.pick(...)`; a resource
only one stage uses is built in that stage's module from `deployment.name`. `Deployment` builds the
shared ones once, so every stage that names `lake` gets the same object: `Definitions.merge` accepts a
key named by several stages only when it is the identical object.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import dagster as dg

from resources.encoder import EncoderResource
from resources.index import LocalIndexResource, S3IndexResource
from resources.lake import LocalLakeResource, S3LakeResource
from resources.lineage import LakeRefIOManager
from resources.ray import LocalRayCluster, RayClusterAddress

# Training tasks request this custom resource: only the training worker group carries it
# (deploy/raycluster.yaml), so ingest steps never starve training of its nodes, nor the reverse.
TRAIN_RESOURCE = "train"

REPO_ROOT = Path(__file__).resolve().parents[1]
DEPLOYMENTS = ("local", "cluster")


def current_deployment() -> str:
    deployment = os.environ.get("FLYWHEEL_DEPLOYMENT", "local")
    if deployment not in DEPLOYMENTS:
        raise ValueError(f"FLYWHEEL_DEPLOYMENT={deployment!r}: must be one of {DEPLOYMENTS}")
    return deployment


def local_lake_root() -> str:
    return os.environ.get("FLYWHEEL_LAKE_ROOT", str(REPO_ROOT / "var" / "lake"))


def local_resources() -> dict[str, Any]:
    lake = LocalLakeResource(root=local_lake_root())
    return {"lake": lake, "ref_io_manager": LakeRefIOManager(lake=lake),
            "ray": LocalRayCluster(num_cpus=2),
            "index": LocalIndexResource(), "encoder": EncoderResource()}


def cluster_resources() -> dict[str, Any]:
    lake = S3LakeResource(
        uri=dg.EnvVar("FLYWHEEL_LAKE_URI"),
        endpoint=dg.EnvVar("AWS_ENDPOINT_URL"),
        access_key_id=dg.EnvVar("AWS_ACCESS_KEY_ID"),
        secret_access_key=dg.EnvVar("AWS_SECRET_ACCESS_KEY"),
    )
    return {
        "lake": lake, "ref_io_manager": LakeRefIOManager(lake=lake),
        "ray": RayClusterAddress(address=dg.EnvVar("FLYWHEEL_RAY_ADDRESS"),
                                 task_resources={TRAIN_RESOURCE: 1.0}),
        "index": S3IndexResource(endpoint=dg.EnvVar("AWS_ENDPOINT_URL"),
                                 access_key_id=dg.EnvVar("AWS_ACCESS_KEY_ID"),
                                 secret_access_key=dg.EnvVar("AWS_SECRET_ACCESS_KEY")),
        "encoder": EncoderResource(),
    }


def cluster_executor() -> dg.ExecutorDefinition:
    """Each step of a run is a Ray job on the cluster (dagster-ray's ray_executor): the run worker
    only orchestrates, the decode/embed/train work is scheduled by Ray across the nodes. One CPU
    per step; the Ray nodes carry the lake, instance and Ray settings in their own environment."""
    from dagster_ray import ray_executor

    return ray_executor.configured(
        {"ray": {"address": {"env": "FLYWHEEL_RAY_JOBS_URL"}, "num_cpus": 1.0}}, name="ray_steps")


def resources_for(deployment: str | None = None) -> dict[str, Any]:
    """Every shared resource of a deployment (a fresh set per call)."""
    deployment = deployment or current_deployment()
    return local_resources() if deployment == "local" else cluster_resources()


class Deployment:
    """One deployment as the stages see it: its name and its shared resources, built once."""

    def __init__(self, name: str | None = None) -> None:
        self.name = name or current_deployment()
        if self.name not in DEPLOYMENTS:
            raise ValueError(f"deployment {self.name!r}: must be one of {DEPLOYMENTS}")
        self.shared: dict[str, Any] = resources_for(self.name)
        # None: Dagster's default (multiprocess under `dagster dev`, in-process in materialize)
        self.executor: dg.ExecutorDefinition | None = (
            cluster_executor() if self.name == "cluster" else None)

    def pick(self, *keys: str) -> dict[str, Any]:
        """The named shared resources (the same objects for every stage that names them)."""
        missing = [k for k in keys if k not in self.shared]
        if missing:
            raise KeyError(f"no shared resource {missing} in deployment {self.name!r}; shared: "
                           f"{sorted(self.shared)} (a stage's own resource belongs in its module)")
        return {k: self.shared[k] for k in keys}
