"""A federated round's head, written into a candidate model in the registry.

The candidate is the production model with its final linear layer replaced: the ONNX graph
(onnx_head.with_head, embedding output kept) and the torch checkpoint (the Classify head's
`linear`), so the golden check compares torch and ONNX Runtime exactly as for a trained candidate,
and the card records the round as its training and production as its parent. From here on it is
a candidate like any other: evaluation, gate, release.
"""

from __future__ import annotations

import hashlib
import io
import json
import tempfile
from datetime import UTC, datetime
from pathlib import Path

import numpy as np

from edge_agent.lake import Lake
from flywheel.learner import registry
from flywheel.learner.config import GateRules
from flywheel.learner.documents import ModelCardV1

HEAD_ONNX = "model.onnx"  # the registered graph whose final Gemm is the head devices adapt
REBUILT = ("weights.pt", "model.onnx", "golden.npz")  # what a candidate writes anew; the rest is carried


def head_graph(lake: Lake, model_id: str):
    """The ONNX graph that computes the embedding and the head (the cloud's one reader of it, as
    `embedding_of` is the device's: a two-stage model names its crop classifier's file here)."""
    import onnx

    return onnx.load_from_string(lake.get(registry.key(model_id, HEAD_ONNX)))


def base_head(lake: Lake, model_id: str) -> tuple[np.ndarray, np.ndarray]:
    """The head (W [d, k], b [k]) of a registered model's ONNX graph."""
    from flywheel.learner.onnx_head import read_head

    return read_head(head_graph(lake, model_id))


def embedding_space_of(lake: Lake, model_id: str) -> str:
    """The registered model's embedding space, computed as its devices compute it
    (edge_agent.federated.runtime.backbone_of + contract.federated.embedding_space)."""
    from edge_agent.contract.federated import BACKBONE_METADATA, embedding_space

    model = head_graph(lake, model_id)
    digest = next((p.value for p in model.metadata_props if p.key == BACKBONE_METADATA), "")
    labels = registry.read_device_model(lake, model_id).labels
    return embedding_space(digest or f"model:{model_id}", list(labels))


def federated_model_id(base_model_id: str, w: np.ndarray, b: np.ndarray, at: datetime | None = None) -> str:
    at = at or datetime.now(UTC)
    digest = hashlib.sha256(base_model_id.encode() + w.tobytes() + b.tobytes()).hexdigest()
    return f"fed-{at.strftime('%Y%m%dT%H%M%S')}-{digest[:8]}"


def _torch_with_head(weights: Path, w: np.ndarray, b: np.ndarray, dest: Path, meta: dict) -> None:
    """The checkpoint with the Classify head's linear layer set to x @ w + b."""
    import torch

    ckpt = torch.load(weights, map_location="cpu", weights_only=False)
    for name in ("model", "ema"):
        net = ckpt.get(name)
        if net is None:
            continue
        linear = net.model[-1].linear
        with torch.no_grad():
            linear.weight.copy_(torch.from_numpy(np.ascontiguousarray(w.T)).to(linear.weight.dtype))
            linear.bias.copy_(torch.from_numpy(b).to(linear.bias.dtype))
    ckpt["flywheel"] = {**ckpt.get("flywheel", {}), **meta}
    torch.save(ckpt, dest)


def register_candidate(lake: Lake, base_model_id: str, w: np.ndarray, b: np.ndarray,
                       round_summary: dict, rules: GateRules | None = None) -> ModelCardV1:
    """Register production + the new head as a candidate; returns its card (written last)."""
    from flywheel.learner.onnx_head import expose_embedding, with_head

    model_id = federated_model_id(base_model_id, w, b)
    graph = expose_embedding(head_graph(lake, base_model_id))
    new_onnx = with_head(graph, w, b).SerializeToString()
    meta = {"model_id": model_id, "parent_model": base_model_id, "federated_round": round_summary}

    def build(tmp: Path, base_weights: Path) -> None:
        _torch_with_head(base_weights, w, b, tmp / "weights.pt", meta)
        (tmp / "model.onnx").write_bytes(new_onnx)

    return _register(lake, base_model_id, model_id, build, {"federated_round": round_summary}, rules)


def register_weights(lake: Lake, base_model_id: str, model_id: str, weights: Path, training: dict,
                     rules: GateRules | None = None) -> ModelCardV1:
    """Register new weights of the base model's architecture and classes (e.g. the base fine-tuned
    centrally) as a candidate: ONNX exported as the Learner exports (logits, embedding output,
    backbone stamp), validated on the base's golden inputs, the base's card otherwise."""
    import os
    import shutil

    from flywheel.learner.onnx_tools import export_onnx

    imgsz = registry.read_card(lake, base_model_id).imgsz

    def build(tmp: Path, _base_weights: Path) -> None:
        shutil.copyfile(weights, tmp / "weights.pt")
        os.replace(export_onnx(tmp / "weights.pt", imgsz), tmp / "model.onnx")

    return _register(lake, base_model_id, model_id, build, training, rules)


def _register(lake: Lake, base_model_id: str, model_id: str, build, training: dict,
              rules: GateRules | None) -> ModelCardV1:
    """`build(tmp, base_weights)` writes tmp/weights.pt and tmp/model.onnx; this validates ONNX
    against torch on the base's golden inputs and writes the files, device model and card. Every
    other file of the base (a two-stage base's detector.onnx / detector.pt) is carried byte for
    byte, sha256-checked: the candidate changes only the classifier, so its device card names the
    base's detector with the same sha256 and the release ships it with the classifier."""
    from flywheel.learner import onnx_tools
    from flywheel.learner.train import device_model

    rules = rules or GateRules()
    base = registry.read_card(lake, base_model_id)
    golden = dict(np.load(io.BytesIO(lake.get(registry.key(base_model_id, "golden.npz")))))
    carried = sorted(set(base.files) - set(REBUILT))
    with tempfile.TemporaryDirectory(prefix="flywheel-fed-") as tmp_dir:
        tmp = Path(tmp_dir)
        (tmp / "base").mkdir()
        build(tmp, registry.fetch_file(lake, base_model_id, "weights.pt", tmp / "base"))
        for name in carried:
            registry.fetch_file(lake, base_model_id, name, tmp / "base").replace(tmp / name)
        new_onnx = (tmp / "model.onnx").read_bytes()
        expected = onnx_tools.torch_outputs(tmp / "weights.pt", golden["inputs"])
        got = onnx_tools.onnx_outputs(onnx_tools.onnx_session(new_onnx), golden["inputs"])
        validation = onnx_tools.compare_outputs(expected, got, rules.onnx_max_abs_diff,
                                                rules.onnx_min_top1_agreement, base.task)
        # the classifier's expected outputs are new; a detector's golden pairs stay the base's
        np.savez_compressed(tmp / "golden.npz", **{**golden, "expected": expected})
        files = {name: registry.put_file(lake, model_id, name, tmp / name)
                 for name in (*REBUILT, *carried)}
    doc = base.model_dump(mode="json", by_alias=True)
    doc.update(model_id=model_id, files=files, onnx_validation=validation,
               created_at=datetime.now(UTC).isoformat(),
               training=json.loads(json.dumps(training, default=str)))
    doc["lineage"].update(parent_model=base_model_id, code_version=registry.code_version())
    card = ModelCardV1.model_validate(doc)
    registry.write_device_model(lake, device_model(card))
    registry.write_card(lake, card)
    return card
