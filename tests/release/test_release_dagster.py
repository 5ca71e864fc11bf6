"""The release stage in Dagster: the rollout asset's gate checks (actual/threshold) and actions, the
health-gate sensor's ticks, and the timestamp refresh job, against a real lake and real keys."""

from __future__ import annotations

from datetime import UTC, datetime

import dagster as dg

from assets.release import GATE_CHECKS, release_rollout
from edge_agent.contract.layout import status_key
from edge_agent.contract.release import RolloutStage
from edge_agent.contract.schemas import (
    HealthFigures,
    LatencyMs,
    OtaStateV2,
    StatusReportV2,
    dump_document,
)
from flywheel.refs import EvaluationRef, ModelRef
from flywheel.release.keys import load_keys
from flywheel.release.publish import current_channel, publish_release
from flywheel.release.repository import open_channel
from jobs.release import evaluate_status, refresh_timestamps_job
from resources.lake import LocalLakeResource
from resources.release import LocalReleaseSigner
from tests.support.ota import release_files


def _report(lake, device: str, release_id: str, agree: int) -> None:
    doc = StatusReportV2(device_id=device, store_id="S1", reported_at=datetime.now(UTC),
                         agent_version="t", model_version="m", rule_set_version="r1", window_s=600,
                         frames_processed=2000, inference_latency_ms=LatencyMs(p50=2.0, p99=5.0),
                         ota=OtaStateV2(channel="stable", release_id=release_id, state="active"),
                         health=HealthFigures(predictions=200, barcode_checked=200, barcode_agree=agree))
    lake.put(status_key(device, datetime.now(UTC)), dump_document(doc))


def test_rollout_asset_halts_a_worse_canary_with_checks_and_sensor_ticks(tmp_path, keys_dir):
    lake_res = LocalLakeResource(root=str(tmp_path / "lake"))
    lake = lake_res.lake()
    signer = LocalReleaseSigner(keys_dir=str(keys_dir), create_missing=False)
    repo = open_channel(lake, "stable", load_keys(keys_dir))
    good = publish_release(repo, "cls-good", release_files(1, "m-good"), RolloutStage(stage="full",
                                                                                       percent=100))
    cand = publish_release(repo, "cls-cand", release_files(2, "m-cand"),
                           RolloutStage(stage="canary", percent=5))
    instance = dg.DagsterInstance.ephemeral()
    ctx = dg.build_sensor_context(instance=instance, resources={"lake": lake_res})
    assert evaluate_status(ctx, lake_res).run_requests == []  # no reports yet
    for i in range(4):
        _report(lake, f"cart-c{i}", cand.release.release_id, agree=150)  # 75 % agreement
        _report(lake, f"cart-p{i}", good.release.release_id, agree=196)  # 98 %
    tick = evaluate_status(dg.build_sensor_context(instance=instance, resources={"lake": lake_res}),
                           lake_res)
    assert len(tick.run_requests) == 1
    again = evaluate_status(dg.build_sensor_context(cursor=tick.cursor, instance=instance,
                                                    resources={"lake": lake_res}), lake_res)
    assert again.run_requests == []  # the same reports are never judged twice
    # a report from a device whose key sorts before every key seen so far is still new
    _report(lake, "cart-a0", good.release.release_id, agree=196)
    late = evaluate_status(dg.build_sensor_context(cursor=again.cursor, instance=instance,
                                                   resources={"lake": lake_res}), lake_res)
    assert [r.tags["release/new_reports"] for r in late.run_requests] == ["1"]

    result = dg.materialize([release_rollout], instance=instance,
                            resources={"lake": lake_res, "signer": signer})
    assert result.success
    checks = {c.check_name: c for c in result.get_asset_check_evaluations()}
    assert set(checks) == set(GATE_CHECKS)
    bad = checks["barcode_disagreement"]
    assert not bad.passed
    assert bad.metadata["actual"].value > bad.metadata["threshold"].value == 0.02
    assert checks["inference_p99_ms"].passed and checks["inference_p99_ms"].metadata["actual"].value == 5.0
    mat = result.asset_materializations_for_node("release_rollout")[0]
    assert mat.metadata["action"].value == "halt"
    assert mat.metadata["reports_read_this_run"].value == mat.metadata["reports_in_window"].value == 9
    rolled = current_channel(open_channel(lake, "stable", load_keys(keys_dir), create=False))
    assert rolled.release.model_id == "cls-good" and rolled.sequence > cand.sequence


def test_timestamp_refresh_job_resigns(tmp_path, keys_dir):
    lake_res = LocalLakeResource(root=str(tmp_path / "lake"))
    repo = open_channel(lake_res.lake(), "stable", load_keys(keys_dir))
    before = repo.timestamp.signed.version
    result = refresh_timestamps_job.execute_in_process(resources={
        "lake": lake_res, "signer": LocalReleaseSigner(keys_dir=str(keys_dir), create_missing=False)})
    assert result.success
    assert result.output_for_node("refresh_channel_timestamp") == before + 1
    reloaded = open_channel(lake_res.lake(), "stable", load_keys(keys_dir), create=False)
    assert reloaded.timestamp.signed.version == before + 1


def _registered_candidate(lake, model_id: str, seed: int, top1: float, production_id: str | None):
    """A registry entry plus the evaluation the Learner would have written for it."""
    from flywheel.learner import registry
    from flywheel.learner.documents import EvaluationV1, ModelEvaluation
    from tests.support.ota import register_model

    register_model(lake, model_id, release_files(seed, f"m-{model_id}"))

    def ev(t: float) -> ModelEvaluation:
        return ModelEvaluation(sets={}, slices={}, metrics={"production_top1": t, "latency_p95_ms": 1.0})

    registry.write_evaluation(lake, EvaluationV1(
        candidate_id=model_id, candidate=ev(top1), production_id=production_id,
        production=ev(0.5) if production_id else None, test_set_versions={}, report_md=""))


def _upstream(model_id: str):
    """Stand-ins for the Learner's candidate_model and candidate_evaluation (unit test: no Ray);
    they hand the release asset references exactly as the real ones do."""
    from flywheel.learner.pipeline import evaluation_ref
    from flywheel.refs import ref_for

    @dg.asset(name="candidate_model", io_manager_key="ref_io_manager")
    def candidate_model(lake: LocalLakeResource) -> ModelRef:
        return ref_for(lake.lake(), ModelRef, f"models/{model_id}/model.json", model_id=model_id)

    @dg.asset(name="candidate_evaluation", io_manager_key="ref_io_manager", deps=[candidate_model])
    def candidate_evaluation(lake: LocalLakeResource) -> EvaluationRef:
        return evaluation_ref(lake.lake(), model_id)

    return [candidate_model, candidate_evaluation]


def test_release_asset_signs_the_gated_candidate_and_devices_take_it(tmp_path, keys_dir):
    from assets.release import release
    from flywheel.learner import registry
    from resources.lineage import LakeRefIOManager
    from tests.support.ota import SimDevice

    lake_res = LocalLakeResource(root=str(tmp_path / "lake"))
    lake = lake_res.lake()
    resources = {"lake": lake_res, "ref_io_manager": LakeRefIOManager(lake=lake_res),
                 "signer": LocalReleaseSigner(keys_dir=str(keys_dir), create_missing=False)}
    instance = dg.DagsterInstance.ephemeral()
    _registered_candidate(lake, "cls-a", 1, top1=0.5, production_id=None)
    result = dg.materialize([*_upstream("cls-a"), release], instance=instance, resources=resources)
    assert result.success
    check = next(c for c in result.get_asset_check_evaluations() if c.check_name == "gate_rechecked")
    assert check.passed and check.metadata["candidate"].value == "cls-a"
    md = result.asset_materializations_for_node("release")[0].metadata
    assert md["stage"].value == "full 100%" and md["production_moved"].value is True
    assert registry.production_model_id(lake) == "cls-a"  # moved by the release stage, at 100 %
    device = SimDevice("cart-1", tmp_path / "cart-1")
    device.install_factory()
    up = device.updater(lake, "stable", lake.get("releases/stable/metadata/1.root.json"))
    assert up.check() == "probing" and up.probe() == "active"
    assert device.running_version() == "cls-a"  # device.json names the registry's model id

    # A candidate whose gate fails on re-check is never signed; the channel does not move.
    _registered_candidate(lake, "cls-b", 2, top1=0.4, production_id="cls-a")
    failed = dg.materialize([*_upstream("cls-b"), release], instance=instance, resources=resources,
                            raise_on_error=False)
    assert not failed.success
    check = next(c for c in failed.get_asset_check_evaluations() if c.check_name == "gate_rechecked")
    assert not check.passed and check.metadata["candidate"].value == "cls-b"
    channel = current_channel(open_channel(lake, "stable", load_keys(keys_dir), create=False))
    assert channel.release.model_id == "cls-a" and registry.production_model_id(lake) == "cls-a"
