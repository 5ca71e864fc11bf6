"""The cluster deployment on real engines, on this machine: a Ray head and two workers (separate
`ray start` processes), the Dagster instance on PostgreSQL, the lake and LanceDB on SeaweedFS S3.

- Depot ingest fans out: one run per capture day, started side by side as `dagster job execute`
  processes (what the run queue's launcher does); the cluster deployment's ray_executor makes each
  step a Ray job; the steps spread over both workers and every day is written exactly once.
- Training runs through the cluster deployment's Ray resource (RayClusterAddress) and lands on the
  worker carrying the `train` resource, checked by node id.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from collections import Counter
from pathlib import Path

import dagster as dg
import pytest

from tests.support.clips import land_clip

# each step is a process that loads the code location: minutes on a loaded 2-core machine
pytestmark = [pytest.mark.slow, pytest.mark.integration, pytest.mark.e2e, pytest.mark.timeout(1200)]

ROOT = Path(__file__).resolve().parents[2]
DAYS = ["2026-11-10", "2026-11-11", "2026-11-12"]


@pytest.fixture(scope="module")
def cluster_env(seaweed, pg_home, pg_server) -> dict[str, str]:
    """The cluster deployment's settings, as a Helm release / the RayCluster pods would carry them."""
    return {**seaweed.env(), **pg_server.env(), "DAGSTER_PG_PASSWORD": "trust-auth-ignores-it",
            "DAGSTER_HOME": str(pg_home), "FLYWHEEL_DEPLOYMENT": "cluster",
            "FLYWHEEL_LAKE_URI": f"s3://{seaweed.bucket}/cluster-deployment",
            "YOLO_OFFLINE": "1", "RAY_AUTH_MODE": "disabled"}


@pytest.fixture(scope="module")
def cluster(cluster_env):
    from flywheel.devstack.ray_nodes import ray_nodes

    with ray_nodes(workers=2, worker_cpus=1, worker_resources=[{}, {"train": 1.0}],
                   extra_env=cluster_env) as nodes:
        yield nodes


@pytest.fixture(scope="module")
def cluster_lake(cluster_env):
    from edge_agent.lake import Lake, S3Options

    return Lake(cluster_env["FLYWHEEL_LAKE_URI"], s3=S3Options(
        endpoint=cluster_env["AWS_ENDPOINT_URL"], access_key_id=cluster_env["AWS_ACCESS_KEY_ID"],
        secret_access_key=cluster_env["AWS_SECRET_ACCESS_KEY"]))


def test_depot_days_ingest_in_parallel_as_ray_steps_across_nodes(cluster, cluster_env, cluster_lake,
                                                                 pg_instance) -> None:
    from ray.job_submission import JobSubmissionClient

    from assets.depot import capture_days

    landed = {d: [land_clip(cluster_lake, seed=10 * i + k, day=d, device_id=f"cart-{k:03d}").clip_id
                  for k in range(2)] for i, d in enumerate(DAYS)}
    pg_instance.add_dynamic_partitions(capture_days.name, DAYS)
    env = {**os.environ, **cluster.env}
    runs = [subprocess.Popen(
        [sys.executable, "-m", "dagster", "job", "execute", "-m", "flywheel.definitions",
         "-j", "depot_ingest_job", "--tags", json.dumps({"dagster/partition": d, "depot/day": d})],
        cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        for d in DAYS]
    outs = [p.communicate(timeout=900)[0] for p in runs]
    for p, out in zip(runs, outs, strict=True):
        assert p.returncode == 0, out[-4000:]

    done = pg_instance.get_runs(filters=dg.RunsFilter(job_name="depot_ingest_job",
                                                      statuses=[dg.DagsterRunStatus.SUCCESS]))
    assert sorted(r.tags["dagster/partition"] for r in done) == DAYS
    # every day materialized exactly once, with exactly its own clips
    for key in ("depot_frames", "depot_index", "depot_fleet_rollup"):
        records = pg_instance.fetch_materializations(dg.AssetKey(key), limit=100).records
        assert Counter(r.partition_key for r in records) == Counter(DAYS), key
    for rec in pg_instance.fetch_materializations(dg.AssetKey("depot_frames"), limit=100).records:
        md = {k: v.value for k, v in rec.asset_materialization.metadata.items()}
        assert md["clips_ingested"] == len(landed[rec.partition_key])
        assert md["clips_already_ingested"] == 0 and md["rejected_clips"] == 0
    index = pg_instance.fetch_materializations(dg.AssetKey("depot_index"), limit=100).records
    assert all(r.asset_materialization.metadata["rows_day"].value > 0 for r in index)
    # each step was a Ray job with one CPU; the head has none, so they ran on the workers: both
    jobs = [j for j in JobSubmissionClient(cluster.jobs_url).list_jobs()
            if (j.metadata or {}).get("dagster/job") == "depot_ingest_job"]
    assert Counter(j.metadata["dagster/op"] for j in jobs) == {
        "depot_frames": 3, "depot_index": 3, "depot_fleet_rollup": 3}
    workers = {n["NodeID"] for n in cluster.nodes() if not n["IsHead"]}
    assert {j.driver_node_id for j in jobs} == workers


TRAIN_SCRIPT = textwrap.dedent("""
    import json, os
    import dagster as dg
    import assets.learner as la
    from jobs.learner import train_and_evaluate
    from resources.deployments import cluster_resources
    from tests.learner.fakes import label_days_source

    res = cluster_resources()  # the cluster deployment's lake (S3) and Ray (by address)
    train = dg.define_asset_job("train_only", selection=dg.AssetSelection.groups("learner"))
    defs = dg.Definitions(
        assets=[la.learner_sources, la.dataset_version, la.candidate_model, label_days_source()],
        jobs=[train], resources={k: res[k] for k in ("lake", "ref_io_manager", "ray")})
    result = defs.resolve_job_def("train_only").execute_in_process(run_config={"ops": {
        "learner_sources": {"config": {"seed": 0, "n_per_sku": 4, "n_test": 20, "n_insertions": 2}},
        "candidate_model": {"config": {"epochs": 1, "batch": 32, "num_cpus": 1,
                                                 "det_epochs": 1}}}},
        instance=dg.DagsterInstance.ephemeral())
    (mat,) = [e.materialization for e in result.get_asset_materialization_events()
              if e.materialization.asset_key.to_user_string() == "candidate_model"]
    print("RESULT " + json.dumps({k: v.value for k, v in mat.metadata.items()
                                  if k in ("ran_on", "ray_cluster", "ray_task_resources", "epochs")}))
""")


def test_training_runs_on_the_train_worker_by_node_id(cluster, cluster_env) -> None:
    train_node = next(n["NodeID"] for n in cluster.nodes() if "train" in n["Resources"])
    out = subprocess.run([sys.executable, "-c", TRAIN_SCRIPT], cwd=ROOT, capture_output=True,
                         text=True, timeout=900, env={**os.environ, **cluster.env})
    line = next((x for x in out.stdout.splitlines() if x.startswith("RESULT ")), None)
    assert line, (out.stdout + out.stderr)[-4000:]
    seen = json.loads(line.removeprefix("RESULT "))
    assert seen["ran_on"].startswith(f"ray:{train_node[:8]}/")
    assert seen["ray_cluster"] == f"RayClusterAddress({cluster.address})"
    assert seen["ray_task_resources"] == {"train": 1.0} and seen["epochs"] == 1
