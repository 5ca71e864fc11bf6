"""The Label interface tables round-trip through a lake with their schemas."""

from __future__ import annotations

import pytest

from edge_agent.lake import Lake
from flywheel.label import tables


def _frame(i: int) -> dict:
    return {"frame_id": f"c1-{i:06d}", "clip_id": "c1", "date": "2026-01-02", "store_id": "s1",
            "device_id": "d1", "frame_index": i, "t_s": i / 15}


def test_candidates_round_trip(tmp_path) -> None:
    lake = Lake.at_path(tmp_path)
    rows = [{**_frame(i), "kept": i % 2 == 0, "empty_score": 0.1 * i, "reason": "x"} for i in range(3)]
    assert tables.write_candidates(lake, "2026-01-02", rows) == 3
    t = tables.read_candidates(lake, "2026-01-02")
    assert t.schema == tables.CANDIDATES_SCHEMA
    assert t.column("kept").to_pylist() == [True, False, True]
    assert tables.read_candidates(lake, "2026-01-03").num_rows == 0


def test_prelabels_round_trip_keeps_votes(tmp_path) -> None:
    lake = Lake.at_path(tmp_path)
    vote = {"labeler": "barcode", "version": "1", "label": "4006381333931", "confidence": 0.99,
            "evidence": "scan", "candidates": []}
    abstain = {"labeler": "vlm", "version": "0", "label": None, "confidence": 0.0, "evidence": "n/a",
               "candidates": ["4006381333931", "5012345678900"]}
    row = {**_frame(0), "label": "4006381333931", "confidence": 0.97, "votes": [vote, abstain],
           "labeler_versions": tables.labeler_versions_json({"vlm": "0", "barcode": "1"}),
           "disagreement": False, "barcode_mismatch": False, "candidates": ["4006381333931"]}
    tables.write_prelabels(lake, "2026-01-02", [row])
    t = tables.read_prelabels(lake, "2026-01-02")
    assert t.schema == tables.PRELABELS_SCHEMA
    got = t.to_pylist()[0]
    assert got["votes"] == [vote, abstain] and got["candidates"] == ["4006381333931"]
    assert got["labeler_versions"] == '{"barcode":"1","vlm":"0"}'
    assert tables.prelabels_key("2026-01-02") == "label/prelabels/date=2026-01-02/prelabels.parquet"
    with pytest.raises(ValueError):
        tables.prelabels_key("not-a-day")
