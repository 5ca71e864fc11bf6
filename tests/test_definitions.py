"""The Dagster code location loads, per deployment, and holds only real definitions."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import dagster as dg
import pytest

ROOT = Path(__file__).resolve().parents[1]


LOOP = ("depot_frames", "label_candidates", "prelabels", "review_queue", "merged_labels",
        "dataset_version", "candidate_model", "candidate_evaluation", "release", "release_rollout",
        "flywheel_turns")


def test_one_lineage_from_the_landed_clip_to_the_rollout() -> None:
    from flywheel.definitions import build_definitions

    graph = build_definitions("local").resolve_asset_graph()
    for up, down in zip(LOOP, LOOP[1:], strict=False):
        assert dg.AssetKey(up) in graph.get(dg.AssetKey(down)).parent_keys, f"{up} -> {down}"
    # the gate blocks: a failed release_gate stops the run before anything downstream of it
    checks = {k.name: graph.get_check_spec(k) for k in graph.asset_check_keys}
    assert checks["release_gate"].blocking


@pytest.mark.parametrize("deployment", ["local", "cluster"])
def test_definitions_build_and_resolve(deployment: str) -> None:
    from flywheel.definitions import build_definitions

    defs = build_definitions(deployment)
    repo = defs.get_repository_def()  # resolves every asset, job, sensor and resource binding
    assert set(repo.get_top_level_resources()) == {"lake", "ref_io_manager", "ray", "index", "encoder",
                                                   "labelers", "signer", "labelstudio"}
    expected = {"local": {"lake": "LocalLakeResource", "ray": "LocalRayCluster",
                          "index": "LocalIndexResource", "signer": "LocalReleaseSigner"},
                "cluster": {"lake": "S3LakeResource", "ray": "RayClusterAddress",
                            "index": "S3IndexResource", "signer": "EnvReleaseSigner"}}[deployment]
    assert {k: type(defs.resources[k]).__name__ for k in expected} == expected
    assert {j.name for j in repo.get_all_jobs() if not j.name.startswith("__")} == {
        "depot_ingest_job", "depot_reindex_job", "train_and_evaluate", "prelabel_job", "merged_labels_job",
        "release_job", "release_rollout_job", "refresh_timestamps_job", "rule_yield_job",
        "federated_round_job", "label_audit_job", "label_day_job", "flywheel_turns_job"}
    assert {s.name: s.job_name for s in repo.sensor_defs if s.job_name} == {
        "landing_clips_sensor": "depot_ingest_job", "landing_sweep_sensor": "depot_ingest_job",
        "health_gate_sensor": "release_rollout_job", "release_after_training": "release_job",
        "corrections_sensor": "merged_labels_job", "rule_yield_sensor": "rule_yield_job",
            "depot_reindex_sensor": "depot_reindex_job",
        "label_studio_sensor": "merged_labels_job", "label_after_ingest": "label_day_job"}
    assert {s.name: (s.job_name, s.cron_schedule) for s in repo.schedule_defs} == {
        "weekly_train_and_evaluate": ("train_and_evaluate", "0 3 * * 1"),
        "refresh_release_timestamps": ("refresh_timestamps_job", "17 */4 * * *"),
        "daily_federated_round": ("federated_round_job", "0 2 * * *")}
    ingest = repo.get_job("depot_ingest_job")
    assert {k.to_user_string() for k in ingest.asset_layer.executable_asset_keys} == {
        "depot_frames", "depot_index", "depot_fleet_rollup"}
    assert ingest.partitions_def.name == "capture_day"
    keys = {k.to_user_string() for k in defs.resolve_all_asset_keys()}
    assert {"landing_clips", "depot_frames", "depot_index", "depot_fleet_rollup", "sku_catalog",
            "manual_collection", "dataset_version", "candidate_model", "candidate_evaluation"} <= keys
    # lineage travels through the lake-backed reference IO manager, never the default one
    by_key = {k.to_user_string(): a for a in defs.resolve_asset_graph().assets_defs for k in a.keys}
    for asset in ("dataset_version", "candidate_model", "candidate_evaluation"):
        assert by_key[asset].get_io_manager_key_for_asset_key(dg.AssetKey(asset)) == "ref_io_manager"


def test_workspace_loads_in_dagster(tmp_path: Path) -> None:
    # What `dagster dev` / the webserver does with workspace.yaml: load the code location.
    out = subprocess.run(
        [sys.executable, "-m", "dagster", "definitions", "validate", "-w", "workspace.yaml"],
        cwd=ROOT, capture_output=True, text=True, env={**os.environ, "DAGSTER_HOME": str(tmp_path)},
        timeout=300,
    )
    assert out.returncode == 0, out.stdout + out.stderr


def test_unknown_deployment_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    from resources.deployments import current_deployment

    monkeypatch.setenv("FLYWHEEL_DEPLOYMENT", "prod-ish")
    with pytest.raises(ValueError, match="must be one of"):
        current_deployment()


def test_lake_resource_gives_a_working_lake(tmp_path: Path) -> None:
    from resources.lake import LocalLakeResource

    lake = LocalLakeResource(root=str(tmp_path / "lake")).lake()
    lake.put("x/y", b"1")
    assert lake.get("x/y") == b"1"
    assert isinstance(LocalLakeResource(root="r"), dg.ConfigurableResource)


def test_every_stage_contributes_its_own_defs_and_shares_resources() -> None:
    """The stage convention: each stage module's `defs(deployment)` brings its assets, checks, jobs
    and resources; stages that name the same shared resource merge (they get the same object)."""
    import jobs.depot
    import jobs.label
    import jobs.learner
    import jobs.release
    from flywheel.definitions import STAGES
    from resources.deployments import Deployment

    deployment = Deployment("local")
    depot, learner = jobs.depot.defs(deployment), jobs.learner.defs(deployment)
    label = jobs.label.defs(deployment)  # shares the lake, encoder, index and reference IO manager
    assert {"label_candidates", "prelabels", "review_queue", "merged_labels"} <= {
        k.to_user_string() for k in dg.Definitions.merge(depot, label).resolve_all_asset_keys()}
    assert depot.resources["lake"] is learner.resources["lake"]
    assert learner.resources["ref_io_manager"].lake is learner.resources["lake"]
    # merged_labels (Label) feeds dataset_version (Learner)
    merged = dg.Definitions.merge(depot, learner, label, jobs.release.defs(deployment))
    keys = {k.to_user_string() for k in merged.resolve_all_asset_keys()}
    assert {"depot_frames", "depot_index", "depot_fleet_rollup", "dataset_version",
            "candidate_model", "candidate_evaluation"} <= keys
    assert {j.name for j in merged.resolve_all_job_defs()} >= {"depot_ingest_job", "train_and_evaluate",
                                                                "merged_labels_job", "release_job"}
    assert {jobs.depot, jobs.learner, jobs.label, jobs.release} <= set(STAGES)
    with pytest.raises(KeyError, match="no shared resource"):
        deployment.pick("labeler")
    # two separately built deployments are distinct objects: merging them is refused, loudly
    with pytest.raises(dg.DagsterInvariantViolationError, match="different resources"):
        dg.Definitions.merge(depot, jobs.learner.defs(Deployment("local")))
