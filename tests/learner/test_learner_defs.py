"""Definitions load with the Learner; bad input fails the dataset asset before training; the
cluster deployment's Ray (a cluster by address, training pinned to the `train` nodes) is configured;
tests/cluster/ runs it on real `ray start` nodes."""

from __future__ import annotations

import json

import dagster as dg
import pytest

from tests.learner.fakes import SKUS, fake_frames, label_days_source, to_parquet

LEARNER_ASSETS = {"sku_catalog", "manual_collection", "standard_set_manual", "standard_set_store_A",
                  "standard_set_store_B", "standard_set_store_C", "dataset_version", "candidate_model",
                  "candidate_evaluation", "insertion_set_store_A", "insertion_set_store_B",
                  "insertion_set_store_C"}


@pytest.mark.parametrize("deployment", ["local", "cluster"])
def test_definitions_load_with_the_learner(deployment):
    from flywheel.definitions import build_definitions

    defs = build_definitions(deployment)
    keys = {k.to_user_string() for k in defs.resolve_all_asset_keys()}
    assert LEARNER_ASSETS <= keys
    job = defs.resolve_job_def("train_and_evaluate")
    assert {k.to_user_string() for k in job.asset_layer.executable_asset_keys} >= LEARNER_ASSETS
    schedule = defs.resolve_schedule_def("weekly_train_and_evaluate")
    assert schedule.cron_schedule == "0 3 * * 1" and schedule.job_name == "train_and_evaluate"
    gate = next(c for c in defs.asset_checks if "release_gate" in {k.name for k in c.check_keys})
    assert [spec.blocking for spec in gate.check_specs] == [True]
    from dagster_ray import RayResource

    assert isinstance(defs.resources["ray"], RayResource)


def test_cluster_deployment_pins_training_to_the_train_nodes():
    from resources.deployments import TRAIN_RESOURCE, cluster_resources
    from resources.ray import RayClusterAddress, task_resources

    ray = cluster_resources()["ray"]
    assert isinstance(ray, RayClusterAddress) and task_resources(ray) == {TRAIN_RESOURCE: 1.0}


def test_kuberay_per_run_cluster_keeps_its_training_settings():
    from dagster_ray.kuberay import KubeRayCluster

    from resources.ray import kuberay_cluster

    ray = kuberay_cluster()
    assert isinstance(ray, KubeRayCluster)
    assert ray.namespace == "flywheel" and ray.env_vars["RAY_AUTH_MODE"] == "disabled"
    worker = ray.ray_cluster.spec.worker_group_specs[0]
    assert worker["replicas"] == 2 and worker["rayStartParams"]["num-cpus"] == "4"
    env = {e["name"]: e["value"] for e in worker["template"]["spec"]["containers"][0]["env"]}
    assert env["YOLO_OFFLINE"] == "1"
    assert ray.ray_cluster.spec.head_group_spec["rayStartParams"]["num-cpus"] == "0"


def _seed_lake(lake, frames):
    from flywheel.learner import reference_sets

    catalog = json.dumps({"seed": 0, "products": [{"ean": s} for s in SKUS]})
    reference_sets.import_catalog(lake, catalog)
    reference_sets.import_manual_collection(lake, to_parquet(frames))
    reference_sets.import_standard_set(lake, "store_A", to_parquet(fake_frames(seed=9, store="A",
                                                                           id_prefix="t")))


def _materialize_dataset(tmp_path):
    import assets.learner as la
    from resources.lake import LocalLakeResource
    from resources.lineage import LakeRefIOManager

    lake = LocalLakeResource(root=str(tmp_path))
    return dg.materialize([la.dataset_version, label_days_source()],
                          resources={"lake": lake, "ref_io_manager": LakeRefIOManager(lake=lake)},
                          instance=dg.DagsterInstance.ephemeral(), raise_on_error=False,
                          selection=["dataset_version"])


def test_dataset_asset_materializes_with_balance_report(tmp_path):
    from edge_agent.lake import Lake

    _seed_lake(Lake.at_path(tmp_path), fake_frames(n_sessions=8, empty_every=4))
    result = _materialize_dataset(tmp_path)
    assert result.success
    mat = result.asset_materializations_for_node("dataset_version")[0]
    meta = {k: v.value for k, v in mat.metadata.items()}
    assert meta["members"] == 48 and meta["classes"] == 4 and meta["version"].startswith("ds-")
    assert "data:image/png;base64," in meta["class_balance"]
    check = result.get_asset_check_evaluations()[0]
    assert check.check_name == "val_class_coverage" and check.passed
    assert check.metadata["actual"].value == 0 and check.metadata["threshold"].value == 0
    assert meta["classes_missing_in_val"] == []


@pytest.mark.parametrize("frames, message", [
    (fake_frames(skus=(*SKUS, "9999999999994")), "not in the catalog"),
    (fake_frames(skus=(SKUS[0],)), "single class"),
    (fake_frames().head(0), "empty: 0 labelled frames"),
])
def test_bad_input_fails_the_dataset_asset_before_training(tmp_path, frames, message):
    from edge_agent.lake import Lake

    _seed_lake(Lake.at_path(tmp_path), frames)
    result = _materialize_dataset(tmp_path)
    assert not result.success
    failure = result.failure_data_for_node("dataset_version")
    assert message in str(failure.error.cause.message)
    assert not (tmp_path / "datasets").exists()  # nothing written, nothing to train on


def test_leaked_test_set_sessions_are_refused(tmp_path):
    from edge_agent.lake import Lake
    from flywheel.learner import reference_sets

    frames = fake_frames(n_sessions=6)
    lake = Lake.at_path(tmp_path)
    _seed_lake(lake, frames)
    reference_sets.import_standard_set(lake, "manual", to_parquet(frames.head(5)))
    result = _materialize_dataset(tmp_path)
    assert not result.success
    assert "frozen standard test set" in str(result.failure_data_for_node("dataset_version").error)


def test_extra_label_sources_join_the_dataset(tmp_path):
    import polars as pl

    from edge_agent.lake import Lake
    from flywheel.learner.config import DatasetSpec
    from flywheel.learner.pipeline import build_dataset

    lake = Lake.at_path(tmp_path)
    _seed_lake(lake, fake_frames(n_sessions=6))
    base, _ = build_dataset(lake, DatasetSpec())
    extra = fake_frames(n_sessions=2, seed=4, id_prefix="x").with_columns(pl.lit("fleet").alias("store"))
    lake.put("depot/labels/merged.parquet", to_parquet(extra))
    grown, created = build_dataset(lake, DatasetSpec(), ("depot/labels/merged.parquet",))
    assert created and grown.version != base.version
    assert grown.manifest["counts"]["members"] == base.manifest["counts"]["members"] + extra.height
    assert "depot/labels/merged.parquet" in grown.manifest["sources"]


def test_training_preflight_fails_before_any_cluster_work(tmp_path):
    from edge_agent.lake import Lake
    from flywheel.learner.config import DatasetSpec, GateRules, TrainConfig
    from flywheel.learner.errors import DatasetError
    from flywheel.learner.pipeline import build_dataset, dataset_ref, train_candidate

    lake = Lake.at_path(tmp_path)
    _seed_lake(lake, fake_frames(n_sessions=6))
    ds, _ = build_dataset(lake, DatasetSpec())
    ref = dataset_ref(lake, ds)
    lake.delete(ds.manifest["shards"][0]["key"])

    def runner(_req):
        raise AssertionError("training must not start on a broken dataset version")

    with pytest.raises(DatasetError, match="is missing"):
        train_candidate(lake, TrainConfig(), GateRules(), ref, runner=runner)
