"""The device model: a tiny classifier exported from torch, run by ONNX Runtime from a model slot."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from edge_agent.model import DeviceModel, ModelError, activate_slot, active_stamp, resolve_slot
from edge_agent.runtime import model_loader
from tests.edge_agent.conftest import LABELS, scene


def export_torch_classifier(slot: Path, version: str, seed: int) -> object:
    import torch

    torch.manual_seed(seed)
    net = torch.nn.Sequential(
        torch.nn.Conv2d(3, 8, 3, stride=2, padding=1), torch.nn.ReLU(),
        torch.nn.AdaptiveAvgPool2d(1), torch.nn.Flatten(), torch.nn.Linear(8, len(LABELS)),
    ).eval()
    slot.mkdir(parents=True, exist_ok=True)
    x = torch.zeros(1, 3, 48, 64)
    torch.onnx.export(net, (x,), str(slot / "model.onnx"), input_names=["x"], output_names=["logits"],
                      opset_version=17, dynamo=False)
    (slot / "model.json").write_text(json.dumps({"model_version": version, "labels": LABELS,
                                                 "input_size": [48, 64]}))
    return net


def test_torch_export_runs_in_onnxruntime_from_active_slot(tmp_path: Path) -> None:
    import torch

    root = tmp_path / "model"
    net_a = export_torch_classifier(root / "slots" / "a", "m-a", 0)
    export_torch_classifier(root / "slots" / "b", "m-b", 1)
    (root / "active").write_text("a\n")
    model = DeviceModel(root)
    assert model.version == "m-a" and resolve_slot(root).name == "a"
    img = scene(3, moving=True)
    pred = model.predict(img)
    with torch.no_grad():
        logits = net_a(torch.from_numpy(model.preprocess(img)))[0].numpy()
    p = np.exp(logits - logits.max())
    p /= p.sum()
    k = int(np.argmax(p))
    assert pred.confidence == pytest.approx(float(p[k]), abs=1e-5)
    assert pred.label == (None if LABELS[k] == "none" else LABELS[k])
    assert pred.latency_ms > 0

    # OTA flips the pointer: the hot-swap loader notices and loads slot b
    load = model_loader(root, threads=1)
    assert load() is None
    activate_slot(root, "b")
    swapped = load()
    assert swapped is not None and swapped.version == "m-b"
    assert active_stamp(root)[0].endswith("slots/b")


def test_broken_slots_are_clear_errors(tmp_path: Path) -> None:
    root = tmp_path / "model"
    with pytest.raises(ModelError, match="no model.onnx and no 'active'"):
        DeviceModel(root)
    (root / "slots" / "a").mkdir(parents=True)
    with pytest.raises(ModelError, match="no model.onnx to activate"):
        activate_slot(root, "a")  # never point devices at an empty slot
    (root / "active").write_text("c")
    with pytest.raises(ModelError, match="names slot 'c'"):
        DeviceModel(root)
    (root / "active").write_text("a")
    with pytest.raises(ModelError, match="no model.onnx"):
        DeviceModel(root)
    (root / "slots" / "a" / "model.onnx").write_bytes(b"not an onnx file")
    (root / "slots" / "a" / "model.json").write_text(json.dumps({"model_version": "x",
                                                                 "labels": LABELS}))
    with pytest.raises(ModelError, match="cannot load"):
        DeviceModel(root)
