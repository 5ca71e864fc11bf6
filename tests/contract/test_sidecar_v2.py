"""ClipSidecarV2: V1 plus the device's per-insertion decisions; readers take V1 and V2."""

from __future__ import annotations

import json

import pytest

from edge_agent.contract import ContractError, dump_document, parse_sidecar
from edge_agent.contract.schemas import ClipSidecarV1, ClipSidecarV2
from tests.support.clips import build_clip, insertion_summary


def _doc(**kw) -> dict:
    return json.loads(build_clip(seed=3, n_frames=12, trigger_frames=(4,), **kw).sidecar_bytes)


def test_v1_and_v2_both_parse_and_v2_round_trips() -> None:
    v1 = parse_sidecar(_doc())
    assert type(v1) is ClipSidecarV1 and not hasattr(v1, "insertions")
    v2 = parse_sidecar(_doc(insertions=[insertion_summary(2, 7, confidence=0.42),
                                        insertion_summary(9, 11, source="barcode",
                                                          barcode="4006381333931", confidence=1.0)]))
    assert type(v2) is ClipSidecarV2 and isinstance(v2, ClipSidecarV1)  # V1 readers keep working
    assert [(i.first_frame, i.last_frame, i.source) for i in v2.insertions] == \
        [(2, 7, "vote"), (9, 11, "barcode")]
    assert v2.insertions[0].confidence == 0.42 and v2.insertions[1].barcode == "4006381333931"
    assert parse_sidecar(dump_document(v2)) == v2
    assert parse_sidecar(_doc(insertions=[])).insertions == []


@pytest.mark.parametrize(("ins", "field", "reason"), [
    (insertion_summary(5, 12), "document", "insertions.0.last_frame 12 is past the clip's last frame"),
    (insertion_summary(6, 3, n_frames=4, n_voting=4), "insertions.0", "must not precede first_frame"),
    (insertion_summary(1, 2, n_voting=9), "insertions.0", "n_voting cannot exceed n_frames"),
    (insertion_summary(1, 2, source="barcode"), "insertions.0", "barcode is set exactly"),
    (insertion_summary(1, 2, confidence=1.5), "insertions.0.confidence", "less than or equal to 1"),
    (insertion_summary(1, 2, source="guess"), "insertions.0.source", ""),
    (insertion_summary(1, 2, extra=1), "insertions.0.extra", "Extra inputs"),
])
def test_bad_insertions_are_contract_errors_naming_the_field(ins: dict, field: str, reason: str) -> None:
    with pytest.raises(ContractError) as e:
        parse_sidecar(_doc(insertions=[ins]))
    assert e.value.field.startswith(field) and reason in e.value.reason


def test_v1_refuses_insertions_and_unknown_versions_are_named() -> None:
    doc = _doc(insertions=[insertion_summary(1, 2)])
    with pytest.raises(ContractError, match="insertions"):
        parse_sidecar({**doc, "schema_version": 1})
    with pytest.raises(ContractError, match=r"unknown version 3 .*supported: \[1, 2\]"):
        parse_sidecar({**doc, "schema_version": 3})
