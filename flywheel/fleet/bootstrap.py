"""A bootstrap device model until the Learner releases one: a tiny ONNX classifier built directly
with `onnx.helper` (no torch), installed into an agent's model slot layout.

It pools the frame into a 4x4 colour grid and applies a fixed random linear layer: untrained, but
deterministic, cheap (~0.1 ms) and with confidences that vary with the image, which is all the
Collector needs to exercise low-confidence and disagreement triggers.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

from edge_agent.contract.schemas import DeviceModelV1, dump_document
from edge_agent.model import activate_slot

INPUT_HW = (64, 64)
GRID = 4


MEAN, STD = 0.5, 0.25  # input normalisation written to model.json


def grid_features(image: np.ndarray) -> np.ndarray:
    """What the ONNX graph computes before its linear layer (nearest resize, normalise, pool)."""
    h, w = INPUT_HW
    ys = np.arange(h) * image.shape[0] // h
    xs = np.arange(w) * image.shape[1] // w
    x = (image[ys][:, xs].astype(np.float32) / 255.0 - MEAN) / STD
    pool = h // GRID
    g = x.reshape(GRID, pool, GRID, pool, 3).mean(axis=(1, 3))  # GRID x GRID x 3
    return g.transpose(2, 0, 1).reshape(-1)  # CHW order, as Flatten sees it


def build_classifier_onnx(labels: Sequence[str], seed: int = 0, scale: float = 1.5,
                          background: np.ndarray | None = None, none_margin: float = 2.0) -> bytes:
    """Random linear head; with a `background` frame the bias centres it, so an empty basket reads
    as "none" (label 0) with confidence and anything in view gets a spread of confidences."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(seed)
    k = len(labels)
    feat = 3 * GRID * GRID
    w = (rng.standard_normal((feat, k)) * scale / np.sqrt(feat)).astype(np.float32)
    b = np.zeros((k,), np.float32)
    if background is not None:
        b = (-grid_features(background) @ w).astype(np.float32)
        b[0] += none_margin
    pool = INPUT_HW[0] // GRID
    nodes = [
        helper.make_node("AveragePool", ["x"], ["p"], kernel_shape=[pool, pool], strides=[pool, pool]),
        helper.make_node("Flatten", ["p"], ["f"]),
        helper.make_node("Gemm", ["f", "W", "B"], ["logits"]),
    ]
    graph = helper.make_graph(
        nodes, "bootstrap_classifier",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3, *INPUT_HW])],
        [helper.make_tensor_value_info("logits", TensorProto.FLOAT, [1, k])],
        [numpy_helper.from_array(w, "W"), numpy_helper.from_array(b, "B")])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    return model.SerializeToString()


def install_model_slot(model_dir: str | Path, labels: Sequence[str], *, version: str = "bootstrap-0",
                       slot: str = "a", seed: int = 0, onnx_bytes: bytes | None = None,
                       background: np.ndarray | None = None) -> Path:
    """Write slots/<slot>/{model.onnx, model.json} and point `active` at it; returns model_dir."""
    root = Path(model_dir)
    d = root / "slots" / slot
    d.mkdir(parents=True, exist_ok=True)
    (d / "model.onnx").write_bytes(onnx_bytes or build_classifier_onnx(labels, seed, background=background))
    meta = DeviceModelV1(model_version=version, labels=list(labels), input_size=list(INPUT_HW),
                         mean=[MEAN] * 3, std=[STD] * 3)
    (d / "model.json").write_bytes(dump_document(meta))
    activate_slot(root, slot)
    return root


def install_registry_model(lake, model_dir: str | Path, model_id: str, slot: str = "a") -> Path:
    """Install a registered model (models/<id>/model.onnx + device.json) into an agent's slot,
    exactly the files the release path ships to devices."""
    from flywheel.learner import registry

    root = Path(model_dir)
    registry.write_slot(lake, model_id, root / "slots" / slot)  # a two-stage model's detector too
    activate_slot(root, slot)
    return root

