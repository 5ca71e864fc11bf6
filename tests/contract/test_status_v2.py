"""StatusReportV2: V1 plus OTA state (with swapping and shadow) and the release gates' health figures."""

from __future__ import annotations

import json

import pytest

from edge_agent.contract import ContractError
from edge_agent.contract.schemas import StatusReportV1, StatusReportV2, dump_document, parse_status_report
from tests.contract.test_schemas import status


def status_v2(**over):
    doc = status(schema_version=2, ota={"channel": "stable", "release_id": "r000002-m",
                                        "state": "swapping", "shadow_release_id": "r000003-m"},
                 health={"crashes": 1, "predictions": 40, "barcode_checked": 30, "barcode_agree": 27,
                         "low_confidence": 3, "shadow_frames": 100, "shadow_agree": 96})
    doc.update(over)
    return doc


def test_v2_parses_roundtrips_and_v1_still_parses() -> None:
    doc = parse_status_report(json.dumps(status_v2()).encode())
    assert isinstance(doc, StatusReportV2)
    assert doc.health.barcode_agree == 27 and doc.ota.shadow_release_id == "r000003-m"
    assert parse_status_report(dump_document(doc)) == doc
    assert type(parse_status_report(status())) is StatusReportV1


@pytest.mark.parametrize(("field", "value"), [("barcode_agree", 31), ("crashes", -1),
                                              ("shadow_agree", 101)])
def test_v2_health_figures_are_checked(field, value) -> None:
    bad = status_v2()
    bad["health"] = {**bad["health"], field: value}
    with pytest.raises(ContractError):
        parse_status_report(bad)
