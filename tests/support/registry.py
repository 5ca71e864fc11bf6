"""Registry entries for tests that need a model in the lake without training one: the same typed
documents (card, device model, gate, production pointer) the Learner writes."""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime

from edge_agent.contract.schemas import DeviceModelV1
from edge_agent.lake import Lake
from flywheel.learner import registry
from flywheel.learner.documents import CardLineage, GateDecisionV1, ModelCardV1, OnnxValidation


def register_model(lake: Lake, model_id: str, files: dict[str, bytes], *, classes: list[str],
                   imgsz: int = 64, device: DeviceModelV1 | None = None,
                   production: bool = False) -> ModelCardV1:
    """Write the files, the card (files with their sha256), optionally device.json, a passed gate
    and the production pointer."""
    entries = {}
    for name, data in files.items():
        lake.put(registry.key(model_id, name), data)
        entries[name] = {"key": registry.key(model_id, name), "bytes": len(data),
                         "sha256": hashlib.sha256(data).hexdigest()}
    card = ModelCardV1(
        model_id=model_id, task="classify", architecture="test", classes=classes, empty_class=None,
        imgsz=imgsz, preprocessing={"resize": {"width": imgsz, "height": imgsz}}, files=entries,
        lineage=CardLineage(dataset_version="ds-test", code_version="test", parent_model=None,
                            train_config={}),
        training={}, onnx_validation=OnnxValidation(passed=True), created_at=datetime.now(UTC))
    if device is not None:
        registry.write_device_model(lake, device)
    registry.write_card(lake, card)
    if production:
        registry.write_gate(lake, GateDecisionV1(candidate_id=model_id, production_id=None,
                                                 passed=True, reasons=[], rules=[]))
        registry.bootstrap_production(lake, model_id, by="test")
    return card
