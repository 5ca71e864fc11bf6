"""Registry pointer rules: only gate-passed models become production; bootstrap only when none."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import pytest

from flywheel.learner import registry
from flywheel.learner.documents import CardLineage, GateDecisionV1, ModelCardV1, OnnxValidation, dump
from flywheel.learner.errors import RegistryError


def card(model_id: str) -> ModelCardV1:
    return ModelCardV1(
        model_id=model_id, task="classify", architecture="yolov8n-cls.yaml", classes=["a", "b"],
        empty_class=None, imgsz=64, preprocessing={}, files={},
        lineage=CardLineage(dataset_version="ds-1", code_version="abc", parent_model=None,
                            train_config={"epochs": 1}),
        training={"epochs": 1}, onnx_validation=OnnxValidation(passed=True, n=4),
        created_at=datetime(2026, 1, 2, tzinfo=UTC))


def add_model(lake, model_id: str, passed: bool | None) -> None:
    registry.write_card(lake, card(model_id))
    if passed is not None:
        registry.write_gate(lake, GateDecisionV1(
            candidate_id=model_id, production_id=None, passed=passed, rules=[],
            reasons=[] if passed else ["latency: too slow"]))


def test_bootstrap_then_release_moves_the_pointer(local_lake):
    add_model(local_lake, "cls-1", True)
    add_model(local_lake, "cls-2", True)
    assert registry.read_production(local_lake) is None
    first = registry.bootstrap_production(local_lake, "cls-1")
    assert first.model_id == "cls-1" and first.previous is None
    assert registry.bootstrap_production(local_lake, "cls-2") is None  # production exists: no-op
    assert registry.production_model_id(local_lake) == "cls-1"
    moved = registry.set_production(local_lake, "cls-2", by="release", reason="canary healthy")
    assert moved.previous == "cls-1" and registry.production_model_id(local_lake) == "cls-2"


def test_failed_or_ungated_models_never_become_production(local_lake):
    add_model(local_lake, "cls-bad", False)
    add_model(local_lake, "cls-new", None)
    with pytest.raises(RegistryError, match="failed its gate: latency: too slow"):
        registry.bootstrap_production(local_lake, "cls-bad")
    with pytest.raises(RegistryError, match="no gate decision"):
        registry.set_production(local_lake, "cls-new", by="release", reason="")
    with pytest.raises(RegistryError, match="not in the registry"):
        registry.set_production(local_lake, "cls-missing", by="release", reason="")
    assert registry.read_production(local_lake) is None


def test_documents_round_trip_and_a_malformed_card_names_file_and_field(local_lake):
    add_model(local_lake, "cls-1", True)
    assert registry.read_card(local_lake, "cls-1") == card("cls-1")
    raw = json.loads(local_lake.get(registry.key("cls-1", "model.json")))
    assert raw["schema"] == "flywheel.model_card" and raw["schema_version"] == 1
    raw["imgsz"] = "big"
    local_lake.put(registry.key("cls-1", "model.json"), json.dumps(raw).encode())
    with pytest.raises(RegistryError, match=r"models/cls-1/model.json: field imgsz: "):
        registry.read_card(local_lake, "cls-1")
    del raw["imgsz"], raw["lineage"]["code_version"]
    local_lake.put(registry.key("cls-1", "model.json"), json.dumps(raw).encode())
    with pytest.raises(RegistryError, match=r"json: field (imgsz|lineage.code_version): Field required"):
        registry.read_card(local_lake, "cls-1")
    raw.update(schema="flywheel.model_card", schema_version=2, imgsz=64)
    local_lake.put(registry.key("cls-1", "model.json"), json.dumps(raw).encode())
    with pytest.raises(RegistryError, match="field schema_version"):
        registry.read_card(local_lake, "cls-1")


def test_cards_written_before_versioning_still_read(local_lake):
    legacy = json.loads(dump(card("cls-old")))
    legacy.pop("schema_version")
    legacy["schema"] = "flywheel.model/v1"
    local_lake.put(registry.key("cls-old", "model.json"), json.dumps(legacy).encode())
    assert registry.read_card(local_lake, "cls-old") == card("cls-old")


def test_model_ids_are_safe_and_name_their_task():
    mid = registry.new_model_id("classify", "ds-abc", {"epochs": 1}, datetime(2026, 1, 2, tzinfo=UTC))
    assert mid.startswith("cls-20260102T000000-") and registry.key(mid, "model.onnx").startswith("models/")
