"""Registry pointer rules: only gate-passed models become production; bootstrap only when none."""

from __future__ import annotations

import pytest

from flywheel.learner import registry
from flywheel.learner.errors import RegistryError


def add_model(lake, model_id: str, passed: bool | None) -> None:
    registry.put_json(lake, registry.key(model_id, "model.json"), {"model_id": model_id, "files": {}})
    if passed is not None:
        registry.put_json(lake, registry.key(model_id, "gate.json"),
                          {"passed": passed, "reasons": [] if passed else ["latency: too slow"]})


def test_bootstrap_then_release_moves_the_pointer(local_lake):
    add_model(local_lake, "cls-1", True)
    add_model(local_lake, "cls-2", True)
    assert registry.read_production(local_lake) is None
    first = registry.bootstrap_production(local_lake, "cls-1")
    assert first["model_id"] == "cls-1" and first["previous"] is None
    assert registry.bootstrap_production(local_lake, "cls-2") is None  # production exists: no-op
    assert registry.production_model_id(local_lake) == "cls-1"
    moved = registry.set_production(local_lake, "cls-2", by="release", reason="canary healthy")
    assert moved["previous"] == "cls-1" and registry.production_model_id(local_lake) == "cls-2"


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


def test_model_ids_are_safe_and_name_their_task():
    from datetime import UTC, datetime

    mid = registry.new_model_id("classify", "ds-abc", {"epochs": 1}, datetime(2026, 1, 2, tzinfo=UTC))
    assert mid.startswith("cls-20260102T000000-") and registry.key(mid, "model.onnx").startswith("models/")
