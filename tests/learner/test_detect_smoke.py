"""Detect is supported by configuration: item boxes from the simulator truth, YOLO detect layout,
training, ONNX export and validation (smoke test: one epoch in-process on fake frames)."""

from __future__ import annotations

import pytest

from flywheel.learner import reference_sets, registry
from flywheel.learner.config import DatasetSpec, TrainConfig
from flywheel.learner.datasets import write_dataset_version
from flywheel.learner.pipeline import evaluate_candidate, gate_candidate
from flywheel.learner.train import TrainRequest, run_training
from tests.learner.fakes import SKUS, fake_frames, to_parquet


@pytest.mark.slow
def test_detect_trains_exports_and_registers(local_lake):
    frames = fake_frames(n_sessions=6, frames_per_session=6, empty_every=6, size=(96, 64))
    ds, _ = write_dataset_version(local_lake, frames, DatasetSpec(task="detect"), set(SKUS), ["fake"])
    cfg = TrainConfig.for_task("detect", epochs=1, imgsz=64, batch=16)
    assert cfg.model_yaml == "yolov8n.yaml"
    result = run_training(TrainRequest(local_lake.uri, None, ds.version, cfg, "det-smoke",
                                       catalog=tuple(SKUS)))
    assert result.where == "in-process" and len(result.curves) == 1
    assert any(k.startswith("metrics/mAP50") for k in result.curves[0])
    card = registry.read_card(local_lake, "det-smoke")
    assert card.task == "detect" and card.classes == sorted(SKUS)  # no "empty" class in detect
    assert result.onnx_validation["passed"], result.onnx_validation
    assert local_lake.exists(registry.key("det-smoke", "model.onnx"))

    # evaluation on standard sets (box mAP, unknown SKUs counted) and the detect gate rules
    reference_sets.import_standard_set(local_lake, "manual", to_parquet(
        fake_frames(n_sessions=2, seed=5, empty_every=4, size=(96, 64), id_prefix="m")))
    reference_sets.import_standard_set(local_lake, "store_A", to_parquet(
        fake_frames(n_sessions=3, seed=6, store="A", skus=(*SKUS, "4000000000017"), size=(96, 64),
                    id_prefix="a")))
    ev = evaluate_candidate(local_lake, "det-smoke")
    sets = ev.candidate.sets
    assert sets["store_A"]["frames_with_unknown_class"] == 4  # every 4th item is the unknown SKU
    assert 0.0 <= ev.candidate.metrics["production_map50"] <= 1.0
    decision = gate_candidate(local_lake, "det-smoke")
    target = next(r for r in decision.rules if r.name == "target_metric")
    assert "production_map50" in target.detail  # bootstrap: floor 0
    assert decision.passed, decision.reasons
