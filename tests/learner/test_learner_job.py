"""The real thing, once per module: the `train_and_evaluate` job on a real Dagster instance, a real
SeaweedFS lake and the session's real Ray runtime (LocalRay, 2 CPUs), at a tiny size (~1 minute):
simulator imports -> dataset version -> YOLO classify trained as a Ray task -> ONNX validated ->
evaluation on the frozen sets -> blocking gate. Then the registry entry is used the way the edge
agent and the release stage use it."""

from __future__ import annotations

import io

import dagster as dg
import numpy as np
import pytest

from flywheel.learner import registry
from flywheel.learner.config import GateRules, TrainConfig
from flywheel.learner.documents import OnnxValidation
from flywheel.refs import ModelRef
from resources.lineage import LakeRefIOManager
from tests.learner.fakes import label_days_source

pytestmark = [pytest.mark.slow, pytest.mark.integration, pytest.mark.e2e]  # ~110 s: make test-e2e

RUN_CONFIG = {"ops": {
    "learner_sources": {"config": {"seed": 0, "n_per_sku": 6, "n_test": 40, "n_insertions": 4}},
    # the one-stage model behind config (this file checks its device slot, preprocessing and a
    # broken export); the default two-stage model through the job: test_lineage, test_two_stage_*
    "candidate_model": {"config": {"epochs": 2, "batch": 32, "two_stage": False}},
}}


def _lake_resource(seaweed):
    from resources.lake import S3LakeResource

    return S3LakeResource(uri=f"s3://{seaweed.bucket}/learner-job", endpoint=seaweed.endpoint,
                          access_key_id=seaweed.access_key, secret_access_key=seaweed.secret_key)


@pytest.fixture(scope="module")
def job_run(seaweed, ray_cluster, tmp_path_factory):
    import assets.learner as la
    from jobs.learner import train_and_evaluate
    from resources.ray import LocalRayCluster

    lake_res = _lake_resource(seaweed)
    defs = dg.Definitions(
        assets=[la.learner_sources, la.dataset_version, la.candidate_model, la.candidate_evaluation,
                label_days_source()],
        asset_checks=[la.release_gate], jobs=[train_and_evaluate],
        resources={"lake": lake_res, "ref_io_manager": LakeRefIOManager(lake=lake_res),
                   "ray": LocalRayCluster(num_cpus=2)})
    instance = dg.DagsterInstance.ephemeral()
    result = defs.resolve_job_def("train_and_evaluate").execute_in_process(
        run_config=RUN_CONFIG, instance=instance, raise_on_error=False)
    return result, lake_res.lake(), instance


def _mat(result, key: str) -> dict:
    mats = [e.materialization for e in result.get_asset_materialization_events()
            if e.materialization.asset_key.to_user_string() == key]
    assert len(mats) == 1, key
    return {k: v.value for k, v in mats[0].metadata.items()}


def test_job_trains_on_ray_and_registers_a_validated_model(job_run):
    result, lake, _ = job_run
    assert result.success
    ds = _mat(result, "dataset_version")
    model = _mat(result, "candidate_model")
    assert ds["members"] > 100 and ds["classes"] == 22 and ds["train"] > ds["val"] > 0
    assert model["ran_on"].startswith("ray:")  # trained inside a Ray worker, not in this process
    assert model["dataset_version"] == ds["version"] and model["epochs"] == 2
    assert model["onnx_agrees"] is True and model["onnx_max_abs_diff"] < 1e-3
    assert "data:image/png;base64," in model["training_curves"]
    frozen = [c for c in result.get_asset_check_evaluations() if c.check_name == "frozen"]
    assert len(frozen) == 7 and all(c.passed for c in frozen)  # 4 frame sets, 3 insertion sets
    # this tiny set (2 lab sessions per SKU at most) cannot validate every class: the check says
    # which and how many, as a warning that does not stop training
    coverage = next(c for c in result.get_asset_check_evaluations()
                    if c.check_name == "val_class_coverage")
    cov = {k: v.value for k, v in coverage.metadata.items()}
    uncovered = set(ds["classes_missing_in_val"]) - set(cov["in_one_group"])
    assert cov["actual"] == len(uncovered) and coverage.passed == (not uncovered)
    mid = model["model_id"]
    for name in ("weights.pt", "model.onnx", "golden.npz", "model.json", "device.json",
                 "training_curves.json", "evaluation.json", "report.md", "gate.json"):
        assert lake.exists(registry.key(mid, name)), name
    card = registry.read_card(lake, mid)
    assert card.lineage.dataset_version == ds["version"]
    assert card.lineage.parent_model is None and card.lineage.code_version
    assert card.preprocessing["layout"] == "NCHW" and card.preprocessing["dtype"] == "float32"
    assert len(card.classes) == 22 and card.empty_class == "empty"
    device = registry.read_device_model(lake, mid)  # what a device slot gets, typed
    assert device.model_version == mid and device.labels == card.classes
    import torch  # the checkpoint carries its config and dataset version

    ckpt = torch.load(io.BytesIO(lake.get(registry.key(mid, "weights.pt"))), weights_only=False)
    assert ckpt["flywheel"]["dataset_version"] == ds["version"]
    assert ckpt["flywheel"]["config"]["epochs"] == 2


def test_evaluation_and_blocking_gate_are_recorded(job_run):
    result, lake, instance = job_run
    ev = _mat(result, "candidate_evaluation")
    assert 0.0 <= ev["production_top1"] <= 1.0 and 0.0 <= ev["manual_top1"] <= 1.0
    assert ev["production"] == "none" and ev["latency_p95_ms"] > 0
    assert set(ev["test_set_versions"]) == {"manual", "store_A", "store_B", "store_C"}
    # insertion level: one decision per inserted item (barcode + confidence vote), per store
    assert 0.0 <= ev["insertion_top1_min_set"] <= ev["insertion_top1"] <= 1.0
    stored_ev = registry.read_evaluation(lake, ev["candidate"])  # the typed document validates
    assert set(stored_ev.insertion_set_versions) == {f"insertions_store_{s}" for s in "ABC"}
    assert set(stored_ev.candidate.insertions) == set(stored_ev.insertion_set_versions)
    for name, m in stored_ev.candidate.insertions.items():
        assert m["n_insertions"] == 4 and m["barcode_precision"] in (None, 1.0), name
        assert stored_ev.candidate.slices[f"ins:{name}"]["n"] == 4
    checks = result.get_asset_check_evaluations()
    gate = next(c for c in checks if c.check_name == "release_gate")
    assert gate.passed  # bootstrap: no production model yet, the floor is 0
    meta = {k: v.value for k, v in gate.metadata.items()}
    assert meta["actual"] == pytest.approx(ev["production_top1"], abs=1e-3)
    assert meta["threshold"] == GateRules().bootstrap_min_target
    assert meta["latency.threshold"] == GateRules().latency_budget_ms
    assert meta["insertion_top1.actual"] == pytest.approx(ev["insertion_top1_min_set"], abs=1e-3)
    stored = registry.read_gate(lake, ev["candidate"])
    assert stored.passed and stored.candidate_id == ev["candidate"]
    # the gate names the candidate this run trained, handed over as references, not pointers
    assert meta["candidate"] == ev["candidate"] == _mat(result, "candidate_model")["model_id"]
    assert ev["ref"] == f"lineage/candidate_evaluation/{result.run_id}.json"


def test_edge_agent_runs_the_registered_onnx(job_run, tmp_path):
    from edge_agent.model import DeviceModel
    from flywheel.learner.preprocess import to_tensor
    from flywheel.learner.reference_sets import read_standard_sets
    from flywheel.sim import decode_png

    result, lake, _ = job_run
    mid = _mat(result, "candidate_model")["model_id"]
    slot = tmp_path / "slot"
    slot.mkdir()
    (slot / "model.onnx").write_bytes(lake.get(registry.key(mid, "model.onnx")))
    (slot / "model.json").write_bytes(lake.get(registry.key(mid, "device.json")))
    device = DeviceModel(slot)
    card = registry.read_card(lake, mid)
    assert device.labels == card.classes and device.input_hw == (card.imgsz, card.imgsz)
    frames, _ = read_standard_sets(lake, ["store_A"])
    rgb = decode_png(frames["store_A"]["image_png"][0])
    # the device's preprocessing is bit-identical to what training and evaluation used
    wb = card.preprocessing["white_balance"]
    assert device.white_balance == wb == TrainConfig().white_balance  # the job's default
    np.testing.assert_array_equal(device.preprocess(rgb)[0], to_tensor(rgb, card.imgsz, wb))
    pred = device.predict(rgb)
    assert pred.label is None or pred.label in card.classes
    assert 1.0 / len(card.classes) <= pred.confidence <= 1.0


def test_failed_gate_blocks_downstream_and_shows_reasons(job_run, seaweed):
    """A candidate whose training-time ONNX validation failed: the blocking check fails with its
    reason and numbers, and nothing downstream of the evaluation (the release) materializes."""
    import assets.learner as la
    from flywheel.learner.pipeline import model_ref

    result, lake, _ = job_run
    mid = _mat(result, "candidate_model")["model_id"]
    registry.bootstrap_production(lake, mid)  # production = the trained model (no-op if set)
    bad = "cls-onnx-mismatch"
    for name in ("weights.pt", "model.onnx", "golden.npz"):
        lake.put(registry.key(bad, name), lake.get(registry.key(mid, name)))
    card = registry.read_card(lake, mid)
    registry.write_card(lake, card.model_copy(update={"model_id": bad, "onnx_validation": OnnxValidation(
        passed=False, max_abs_diff=0.7, top1_agreement=0.5, n=20,
        reason="max |onnx - torch| = 0.7 (limit 0.001), top-1 agreement 0.500 (min 1)")}))

    @dg.asset(name="candidate_model", io_manager_key="ref_io_manager")
    def bad_candidate() -> ModelRef:  # stands in for training: hands over the broken model
        return model_ref(lake, bad)

    @dg.asset(deps=["candidate_evaluation"])
    def release_stub() -> None:
        raise AssertionError("a blocked gate must stop the release")

    lake_res = _lake_resource(seaweed)
    result = dg.materialize([bad_candidate, la.candidate_evaluation, la.release_gate, release_stub],
                            resources={"lake": lake_res, "ref_io_manager": LakeRefIOManager(lake=lake_res)},
                            instance=dg.DagsterInstance.ephemeral(), raise_on_error=False)
    gate = next(c for c in result.get_asset_check_evaluations() if c.check_name == "release_gate")
    assert not gate.passed
    meta = {k: v.value for k, v in gate.metadata.items()}
    assert meta["reasons"].startswith("onnx_agreement: max |onnx - torch| 0.7")
    assert meta["onnx_agreement.actual"] == 0.7 and meta["onnx_agreement.threshold"] == 1e-3
    assert meta["production"] == mid and "BLOCKED" in meta["decision"]
    assert meta["candidate"] == bad
    assert [m.asset_key.to_user_string() for m in
            (e.materialization for e in result.get_asset_materialization_events())] == [
        "candidate_model", "candidate_evaluation"]
    assert not registry.read_gate(lake, bad).passed


def test_release_recheck_and_onnx_mismatch(job_run, tmp_path):
    import hashlib

    import torch

    from flywheel.learner.gate import recheck_gate
    from flywheel.learner.onnx_tools import export_onnx

    result, lake, _ = job_run
    mid = _mat(result, "candidate_model")["model_id"]
    assert recheck_gate(lake, mid).passed
    registry.bootstrap_production(lake, mid)  # None when the test above bootstrapped already
    assert registry.production_model_id(lake) == mid
    assert recheck_gate(lake, mid).passed  # production == candidate: baseline still fresh

    # a broken export: ONNX of perturbed weights registered as if it were this model's
    ckpt = torch.load(io.BytesIO(lake.get(registry.key(mid, "weights.pt"))), weights_only=False)
    with torch.no_grad():
        for p in ckpt["model"].parameters():
            p.add_(torch.randn_like(p) * 0.5)
    bad = tmp_path / "bad.pt"
    torch.save(ckpt, bad)
    onnx_bytes = export_onnx(bad, 64).read_bytes()
    lake.put(registry.key(mid, "model.onnx"), onnx_bytes)
    card = registry.read_card(lake, mid)
    onnx_entry = card.files["model.onnx"].model_copy(
        update={"sha256": hashlib.sha256(onnx_bytes).hexdigest()})
    registry.write_card(lake, card.model_copy(update={"files": {**card.files, "model.onnx": onnx_entry}}))
    decision = recheck_gate(lake, mid)
    assert not decision.passed
    assert [r.name for r in decision.rules if not r.passed] == ["onnx_agreement"]
    # and bytes that do not match the card fail before any numbers are compared
    lake.put(registry.key(mid, "model.onnx"), onnx_bytes + b"x")
    assert "does not match its card" in recheck_gate(lake, mid).reasons[0]
