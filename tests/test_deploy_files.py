"""deploy/: the files a platform team applies (Dagster's Helm chart values, the KubeRay RayCluster,
the instance's dagster.yaml) carry every field the code relies on, with the values it expects."""

from __future__ import annotations

import json
from pathlib import Path

import dagster as dg
import pytest
import yaml

DEPLOY = Path(__file__).resolve().parents[1] / "deploy"


def _load(name: str) -> dict:
    return yaml.safe_load((DEPLOY / name).read_text())


def _env_vars_read(obj, found: set[str]) -> set[str]:
    """Every EnvVar the cluster Definitions' resources read (nested config included)."""
    if isinstance(obj, dg.EnvVar):
        found.add(obj.env_var_name)
    elif isinstance(obj, dg.ConfigurableResource | dg.Config):
        for name in type(obj).model_fields:
            _env_vars_read(getattr(obj, name, None), found)
    elif isinstance(obj, dict):
        for v in obj.values():
            _env_vars_read(v, found)
    elif isinstance(obj, list | tuple):
        for v in obj:
            _env_vars_read(v, found)
    return found


@pytest.fixture(scope="module")
def code_env() -> set[str]:
    from flywheel.definitions import build_definitions

    defs = build_definitions("cluster")
    found: set[str] = {"FLYWHEEL_RAY_JOBS_URL"}  # the ray_executor's address (env config source)
    for res in defs.resources.values():
        _env_vars_read(res, found)
    assert {"FLYWHEEL_LAKE_URI", "FLYWHEEL_RAY_ADDRESS", "AWS_SECRET_ACCESS_KEY"} <= found
    return found


def _secret_keys() -> dict[str, set[str]]:
    """The secrets' keys, as the header comment of helm-values.yaml lists them."""
    keys: dict[str, set[str]] = {}
    for line in (DEPLOY / "helm-values.yaml").read_text().splitlines():
        parts = line.lstrip("# ").split()
        if line.startswith("#   ") and len(parts) >= 2:
            keys[parts[0]] = {k.strip(",") for k in parts[1:]}
    return keys


def test_helm_values_run_the_cluster_deployment(code_env) -> None:
    values = _load("helm-values.yaml")
    (dep,) = values["dagster-user-deployments"]["deployments"]
    assert dep["dagsterApiGrpcArgs"] == ["--module-name", "flywheel.definitions"]  # workspace.yaml's
    env = {e["name"]: e["value"] for e in dep["env"]}
    assert env["FLYWHEEL_DEPLOYMENT"] == "cluster"
    secrets = _secret_keys()
    from_secrets = set().union(*(secrets[s["name"]] for s in dep["envSecrets"]))
    # every variable the code reads comes from the values or a named secret
    assert code_env <= set(env) | from_secrets, code_env - set(env) - from_secrets
    assert env["FLYWHEEL_LAKE_URI"].startswith("s3://")
    pg = values["postgresql"]
    assert pg["enabled"] is False and pg["postgresqlScheme"] == "postgresql+psycopg2"
    queue = values["dagsterDaemon"]["runCoordinator"]
    assert queue["type"] == "QueuedRunCoordinator"
    (limit,) = queue["config"]["queuedRunCoordinator"]["tagConcurrencyLimits"]
    assert limit == {"key": "depot/day", "value": {"applyLimitPerUniqueValue": True}, "limit": 1}
    assert values["runLauncher"]["type"] == "K8sRunLauncher"


def test_raycluster_matches_the_code_and_the_helm_values(code_env) -> None:
    import ray

    from resources.deployments import TRAIN_RESOURCE
    from resources.ray import TRAINING_ENV

    rc = _load("raycluster.yaml")
    assert rc["apiVersion"] == "ray.io/v1" and rc["kind"] == "RayCluster"
    spec = rc["spec"]
    assert spec["rayVersion"] == ray.__version__  # the image's ray must be the client's
    assert spec["headGroupSpec"]["rayStartParams"]["num-cpus"] == "0"  # the head only schedules
    ports = {p["name"]: p["containerPort"]
             for p in spec["headGroupSpec"]["template"]["spec"]["containers"][0]["ports"]}
    groups = {g["groupName"]: g for g in spec["workerGroupSpecs"]}
    # exactly the train group carries the resource training tasks request
    carrying = {name for name, g in groups.items()
                if TRAIN_RESOURCE in json.loads(json.loads(g["rayStartParams"].get("resources", '"{}"')))}
    assert carrying == {"train"}
    helm_env = {e["name"]: e["value"] for e in
                _load("helm-values.yaml")["dagster-user-deployments"]["deployments"][0]["env"]}
    head_svc = f"{rc['metadata']['name']}-head-svc.{rc['metadata']['namespace']}.svc.cluster.local"
    assert helm_env["FLYWHEEL_RAY_ADDRESS"] == f"{head_svc}:{ports['gcs-server']}"
    assert helm_env["FLYWHEEL_RAY_JOBS_URL"] == f"http://{head_svc}:{ports['dashboard']}"
    secrets = _secret_keys()
    for name, group in groups.items():
        (container,) = group["template"]["spec"]["containers"]
        env = {e["name"]: e.get("value") for e in container["env"]}
        from_secrets = set().union(*(secrets[s["secretRef"]["name"]] for s in container["envFrom"]))
        # a step runs on these nodes: it reads what the code location reads, and the instance
        assert code_env <= set(env) | from_secrets, (name, code_env - set(env) - from_secrets)
        assert "DAGSTER_PG_PASSWORD" in env
        assert {k: env[k] for k in TRAINING_ENV} == TRAINING_ENV
        assert env["FLYWHEEL_RAY_ADDRESS"] == helm_env["FLYWHEEL_RAY_ADDRESS"]
        cpus = container["resources"]["limits"]["cpu"]
        assert group["rayStartParams"]["num-cpus"] == cpus  # Ray schedules what the pod may use


def test_instance_yaml_is_postgres_with_the_run_queue() -> None:
    inst = _load("dagster.yaml")
    db = inst["storage"]["postgres"]["postgres_db"]
    assert db["scheme"] == "postgresql+psycopg2"
    assert {v["env"] for k, v in db.items() if isinstance(v, dict)} == {
        "DAGSTER_PG_HOST", "DAGSTER_PG_PORT", "DAGSTER_PG_USER", "DAGSTER_PG_PASSWORD", "DAGSTER_PG_DB"}
    coord = inst["run_coordinator"]
    assert coord["class"] == "QueuedRunCoordinator"
    # the same queue limits and run monitoring as the local instance (make ui, make demo)
    from jobs.instance import instance_config

    local = instance_config()
    assert coord["config"]["tag_concurrency_limits"] == \
        local["run_coordinator"]["config"]["tag_concurrency_limits"]
    assert inst["run_monitoring"] == local["run_monitoring"]
