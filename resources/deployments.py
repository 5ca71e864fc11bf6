"""Resources per deployment, chosen by one setting: FLYWHEEL_DEPLOYMENT = local | cluster.

local:   file lake under the repo (var/lake), LocalRay, SQLite Dagster instance.
cluster: S3 lake, KubeRay, Postgres instance; endpoints and secrets from EnvVar.
Each stage adds its resources to both functions below.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import dagster as dg

from resources.encoder import EncoderResource
from resources.index import LocalIndexResource, S3IndexResource
from resources.lake import LocalLakeResource, S3LakeResource
from resources.ray import LocalRayCluster, kuberay_cluster
from resources.release import EnvReleaseSigner, LocalReleaseSigner

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
    return {"lake": LocalLakeResource(root=local_lake_root()),
            "ray": LocalRayCluster(num_cpus=2),
            "index": LocalIndexResource(), "encoder": EncoderResource(),
            "signer": LocalReleaseSigner(keys_dir=os.environ.get(
                "FLYWHEEL_RELEASE_KEYS_DIR", str(REPO_ROOT / "var" / "release_keys")))}


def cluster_resources() -> dict[str, Any]:
    return {
        "lake": S3LakeResource(
            uri=dg.EnvVar("FLYWHEEL_LAKE_URI"),
            endpoint=dg.EnvVar("AWS_ENDPOINT_URL"),
            access_key_id=dg.EnvVar("AWS_ACCESS_KEY_ID"),
            secret_access_key=dg.EnvVar("AWS_SECRET_ACCESS_KEY"),
        ),
        "ray": kuberay_cluster(),
        "index": S3IndexResource(endpoint=dg.EnvVar("AWS_ENDPOINT_URL"),
                                 access_key_id=dg.EnvVar("AWS_ACCESS_KEY_ID"),
                                 secret_access_key=dg.EnvVar("AWS_SECRET_ACCESS_KEY")),
        "encoder": EncoderResource(),
        "signer": EnvReleaseSigner(targets_key=dg.EnvVar("FLYWHEEL_RELEASE_TARGETS_KEY"),
                                   snapshot_key=dg.EnvVar("FLYWHEEL_RELEASE_SNAPSHOT_KEY"),
                                   timestamp_key=dg.EnvVar("FLYWHEEL_RELEASE_TIMESTAMP_KEY")),
    }


def resources_for(deployment: str | None = None) -> dict[str, Any]:
    deployment = deployment or current_deployment()
    return local_resources() if deployment == "local" else cluster_resources()
