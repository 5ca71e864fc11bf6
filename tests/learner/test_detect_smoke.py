"""Detect is supported by configuration: item boxes from the simulator truth, YOLO detect layout,
training, ONNX export and validation (smoke test: one epoch in-process on fake frames)."""

from __future__ import annotations

import pytest

from flywheel.learner import registry
from flywheel.learner.config import DatasetSpec, TrainConfig
from flywheel.learner.datasets import write_dataset_version
from flywheel.learner.train import TrainRequest, run_training
from tests.learner.fakes import SKUS, fake_frames


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
    assert card["task"] == "detect" and card["classes"] == sorted(SKUS)  # no "empty" class in detect
    assert result.onnx_validation["passed"], result.onnx_validation
    assert local_lake.exists(registry.key("det-smoke", "model.onnx"))
