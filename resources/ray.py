"""Ray for training, through dagster-ray: `RayResource` is the abstract interface assets ask for.

local:   LocalRayCluster, a LocalRay that starts an in-process Ray runtime with a fixed CPU count, or
         reuses the one already running in this process (a test session's shared cluster) and then
         leaves it running at cleanup instead of shutting down a runtime it does not own.
cluster: RayClusterAddress, a long-lived Ray cluster (the KubeRay RayCluster of deploy/, or `ray start`
         processes) reached by address; training tasks carry its `task_resources` (a custom resource
         only the training workers have) so they land on those nodes.
kuberay_cluster() (dagster-ray's KubeRayCluster, a RayCluster CR per run) stays for a platform that
prefers a cluster per run to a long-lived one.
"""

from __future__ import annotations

import os
from typing import Any

import dagster as dg
from dagster_ray import LocalRay, RayResource
from pydantic import Field, PrivateAttr

__all__ = ["RayResource", "LocalRayCluster", "RayClusterAddress", "kuberay_cluster", "task_resources"]

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


class RayClusterAddress(RayResource):
    """An existing Ray cluster, connected to by address (dagster-ray's RayResource connects with
    `ray.init(address=self.ray_address)`); never created or deleted by a run."""

    address: str = Field(description="The cluster's GCS address (HOST:PORT, for a driver inside the "
                                     "cluster network) or Ray Client address (ray://HOST:10001).")
    task_resources: dict[str, float] = Field(
        default_factory=dict,
        description="Custom resources every training task requests, e.g. {'train': 1}: pins "
                    "training to the nodes that carry that resource.")

    @property
    def host(self) -> str:
        return self.address.removeprefix("ray://").rsplit(":", 1)[0]

    @property
    def ray_address(self) -> str:  # type: ignore[override]
        return self.address

    @property
    def name(self) -> str:
        return f"RayClusterAddress({self.address})"

    @property
    def created(self) -> bool:
        return True  # it exists before the run and outlives it: nothing to create or delete

    @property
    def ready(self) -> bool:
        return True

    def connect(self, context: Any):
        import ray

        if ray.is_initialized():  # a step running as a Ray job is already a driver of the cluster
            context.log.info(f"Reusing the Ray connection of this process ({self.name})")
            return None
        os.environ.setdefault("RAY_AUTH_MODE", "disabled")
        options = dict(self.ray_init_options)
        runtime_env = dict(options.pop("runtime_env", {}) or {})
        runtime_env["env_vars"] = {**TRAINING_ENV, **self.get_env_vars_to_inject(),
                                   **(runtime_env.get("env_vars") or {})}
        options.setdefault("log_to_driver", False)
        self._context = ray.init(address=self.address, runtime_env=runtime_env, **options)
        return self._context

    def cleanup(self, context: Any, exception: BaseException | None) -> None:
        if self._context is not None:
            self._context.disconnect()  # the driver leaves; the cluster keeps running
            self._context = None


def task_resources(ray: RayResource) -> dict[str, float] | None:
    """The custom resources a training task requests on this Ray resource (None: any node)."""
    return dict(getattr(ray, "task_resources", None) or {}) or None


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
