"""Ray for training, through dagster-ray: `RayResource` is the abstract interface assets ask for.

local:   LocalRayCluster, a LocalRay that starts an in-process Ray runtime with a fixed CPU count, or
         reuses the one already running in this process (a test session's shared cluster) and then
         leaves it running at cleanup instead of shutting down a runtime it does not own.
cluster: dagster-ray's KubeRayCluster: a RayCluster CR per run, cleaned up after it; the image and
         namespace come from EnvVar, the worker group is sized for CPU training.
"""

from __future__ import annotations

import os
from typing import Any

import dagster as dg
from dagster_ray import LocalRay, RayResource
from pydantic import Field, PrivateAttr

__all__ = ["RayResource", "LocalRayCluster", "kuberay_cluster"]

TRAINING_ENV = {"YOLO_OFFLINE": "1", "RAY_AUTH_MODE": "disabled"}


class LocalRayCluster(LocalRay):
    """A Ray runtime on this machine (dagster-ray LocalRay) with a CPU limit and reuse."""

    num_cpus: int = Field(default=2, description="CPUs the local Ray runtime may use for tasks.")
    include_dashboard: bool = Field(
        default=False, description="Start the Ray dashboard (off: it costs seconds and a port).")
    _owns_runtime: bool = PrivateAttr(default=False)

    def connect(self, context: Any):
        import ray

        if ray.is_initialized():
            # the process already runs Ray (a shared test cluster, a notebook): use it, keep it
            context.log.info("Reusing the Ray runtime already running in this process")
            return None
        os.environ.setdefault("RAY_AUTH_MODE", "disabled")
        options = dict(self.ray_init_options)
        options.setdefault("num_cpus", self.num_cpus)
        options.setdefault("include_dashboard", self.include_dashboard)
        runtime_env = dict(options.pop("runtime_env", {}) or {})
        runtime_env["env_vars"] = {**TRAINING_ENV, **self.get_env_vars_to_inject(),
                                   **(runtime_env.get("env_vars") or {})}
        self._context = ray.init(runtime_env=runtime_env, **options)
        self._owns_runtime = True
        return self._context

    def cleanup(self, context: Any, exception: BaseException | None) -> None:
        if not self._owns_runtime:
            return  # not ours: the owner shuts it down
        super().cleanup(context, exception)  # disconnects = ray.shutdown() for a local runtime
        self._owns_runtime = False
        self._context = None


def kuberay_cluster(
    image: str | dg.EnvVar | None = None,
    namespace: str = "flywheel",
    workers: int = 2,
    worker_cpus: int = 4,
    worker_memory: str = "8Gi",
) -> RayResource:
    """The cluster deployment's Ray: a KubeRay RayCluster per run (configuration tested, not run)."""
    from dagster_ray.kuberay import KubeRayCluster
    from dagster_ray.kuberay.configs import RayClusterConfig, RayClusterSpec

    env = [{"name": k, "value": v} for k, v in TRAINING_ENV.items()]
    resources = {"requests": {"cpu": str(worker_cpus), "memory": worker_memory},
                 "limits": {"cpu": str(worker_cpus), "memory": worker_memory}}
    head = {"rayStartParams": {"num-cpus": "0"},  # the head schedules, workers train
            "template": {"spec": {"containers": [{"name": "head", "env": env}]}}}
    worker = {"groupName": "train", "replicas": workers, "minReplicas": workers, "maxReplicas": workers,
              "rayStartParams": {"num-cpus": str(worker_cpus)},
              "template": {"spec": {"containers": [{"name": "worker", "env": env,
                                                    "resources": resources}]}}}
    return KubeRayCluster(
        image=image or dg.EnvVar("FLYWHEEL_RAY_IMAGE"),
        ray_cluster=RayClusterConfig(
            metadata={"namespace": namespace},
            spec=RayClusterSpec(head_group_spec=head, worker_group_specs=[worker])),
        env_vars=dict(TRAINING_ENV),
    )
