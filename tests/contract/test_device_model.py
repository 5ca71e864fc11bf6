"""The device's model.json (DeviceModelV1): versioned, strict, and slots from before versioning
still load."""

from __future__ import annotations

import json

import pytest

from edge_agent.contract import ContractError, dump_document, parse_device_model
from edge_agent.contract.schemas import DeviceModelV1

DOC = {"model_version": "cls-1", "labels": ["empty", "4006381333931"], "input_size": [64, 64],
       "mean": [0.0, 0.0, 0.0], "std": [1.0, 1.0, 1.0]}


def test_round_trip_and_legacy_slots() -> None:
    doc = DeviceModelV1(**DOC)
    raw = json.loads(dump_document(doc))
    assert raw["schema"] == "flywheel.device_model" and raw["schema_version"] == 1
    assert parse_device_model(dump_document(doc)) == doc
    assert parse_device_model(json.dumps(DOC)) == doc  # written before versioning: read as v1


@pytest.mark.parametrize("change, field", [
    ({"labels": []}, "labels"),
    ({"input_size": [64]}, "input_size"),
    ({"std": [1.0, 0.0, 1.0]}, "std.1"),
    ({"model_version": "../x"}, "model_version"),
    ({"extra": 1}, "extra"),
    ({"schema": "flywheel.device_model", "schema_version": 9}, "schema_version"),
])
def test_malformed_documents_name_the_field(change: dict, field: str) -> None:
    with pytest.raises(ContractError) as err:
        parse_device_model(json.dumps({**DOC, **change}))
    assert err.value.field == field
