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


def base_head(lake: Lake, model_id: str) -> tuple[np.ndarray, np.ndarray]:
    """The head (W [d, k], b [k]) of a registered model's ONNX graph."""
    import onnx

    from flywheel.learner.onnx_head import read_head

    return read_head(onnx.load_from_string(lake.get(registry.key(model_id, "model.onnx"))))


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
    import onnx

    from flywheel.learner import onnx_tools
    from flywheel.learner.onnx_head import expose_embedding, with_head
    from flywheel.learner.train import device_model

    rules = rules or GateRules()
    base = registry.read_card(lake, base_model_id)
    model_id = federated_model_id(base_model_id, w, b)
    graph = expose_embedding(onnx.load_from_string(lake.get(registry.key(base_model_id, "model.onnx"))))
    new_onnx = with_head(graph, w, b).SerializeToString()
    golden_inputs = np.load(io.BytesIO(lake.get(registry.key(base_model_id, "golden.npz"))))["inputs"]
    meta = {"model_id": model_id, "parent_model": base_model_id, "federated_round": round_summary}
    with tempfile.TemporaryDirectory(prefix="flywheel-fed-") as tmp_dir:
        tmp = Path(tmp_dir)
        weights = registry.fetch_file(lake, base_model_id, "weights.pt", tmp)
        _torch_with_head(weights, w, b, tmp / "weights.pt", meta)
        (tmp / "model.onnx").write_bytes(new_onnx)
        expected = onnx_tools.torch_outputs(tmp / "weights.pt", golden_inputs)
        got = onnx_tools.onnx_outputs(onnx_tools.onnx_session(new_onnx), golden_inputs)
        validation = onnx_tools.compare_outputs(expected, got, rules.onnx_max_abs_diff,
                                                rules.onnx_min_top1_agreement, base.task)
        np.savez_compressed(tmp / "golden.npz", inputs=golden_inputs, expected=expected)
        files = {name: registry.put_file(lake, model_id, name, tmp / name)
                 for name in ("weights.pt", "model.onnx", "golden.npz")}
    doc = base.model_dump(mode="json", by_alias=True)
    doc.update(model_id=model_id, files=files, onnx_validation=validation,
               created_at=datetime.now(UTC).isoformat(),
               training={"federated_round": json.loads(json.dumps(round_summary, default=str))})
    doc["lineage"].update(parent_model=base_model_id, code_version=registry.code_version())
    card = ModelCardV1.model_validate(doc)
    registry.write_device_model(lake, device_model(card))
    registry.write_card(lake, card)
    return card
