"""A review group holds one item: near-duplicates in a real LanceDB table are split by the device's
insertion spans, contiguous time (V1 clips), and disagreeing barcode or weight evidence."""

from __future__ import annotations

import pytest

from flywheel.label.grouping import OUTSIDE, GroupingConfig, cue_of, insertion_of, insertion_spans, same_item
from flywheel.label.routing import lancedb_groups

A, B, C = "4006381333931", "5012345678900", "4006381333948"


def frame(fid: str, clip: str, idx: int, *, barcode: str | None = None, weight: list[str] | None = None
          ) -> dict:
    votes = []
    if barcode:
        votes.append({"labeler": "barcode", "label": barcode, "confidence": 0.9, "candidates": None})
    if weight:
        votes.append({"labeler": "weight", "label": None, "confidence": 0.0, "candidates": weight})
    return {"frame_id": fid, "clip_id": clip, "frame_index": idx, "t_s": idx / 10, "votes": votes}


@pytest.fixture()
def table(tmp_path):  # noqa: ANN001, ANN201
    import lancedb

    db = lancedb.connect(str(tmp_path / "index"))
    return db, [0.6, 0.8, 0.0, 0.0]


def groups_of(db, vector, rows, spans, **kw):  # noqa: ANN001, ANN201
    # every frame the same embedding: distance alone would put each clip in one task
    tbl = db.create_table("frames", data=[{"frame_id": r["frame_id"], "vector": vector} for r in rows],
                          mode="overwrite")
    return sorted(sorted(g) for g in lancedb_groups(tbl, spans=spans, **kw)(rows))


def test_groups_split_by_insertion_time_barcode_and_weight(table) -> None:  # noqa: ANN001
    db, vec = table
    rows = [
        # V2 clip c1: insertion 0 = frames 0..9 (product A), insertion 1 = 15..25 (B), empties between
        frame("c1-02", "c1", 2, barcode=A), frame("c1-05", "c1", 5), frame("c1-08", "c1", 8, weight=[A, C]),
        frame("c1-12", "c1", 12), frame("c1-13", "c1", 13),
        frame("c1-16", "c1", 16, barcode=B), frame("c1-20", "c1", 20),
        # V1 clip c2 (no spans): time must vouch; a weight step with other candidates is another item
        frame("c2-01", "c2", 1), frame("c2-09", "c2", 9), frame("c2-60", "c2", 60),
        frame("c2-62", "c2", 62, weight=[B]), frame("c2-63", "c2", 63, weight=[C]),
        # one insertion, two confident barcode reads that disagree: never one task
        frame("c3-01", "c3", 1, barcode=A), frame("c3-02", "c3", 2, barcode=C), frame("c3-03", "c3", 3),
    ]
    spans = {"c1": [(0, 9), (15, 25)], "c2": None, "c3": [(0, 5)]}
    got = groups_of(db, vec, rows, spans)
    assert got == sorted([
        ["c1-02", "c1-05", "c1-08"], ["c1-12", "c1-13"], ["c1-16", "c1-20"],
        ["c2-01", "c2-09"], ["c2-60", "c2-62"], ["c2-63"],
        ["c3-01", "c3-03"], ["c3-02"]])
    # the cap on a task's frames holds too
    assert max(len(g) for g in groups_of(db, vec, rows, spans, config=GroupingConfig(max_members=2))) == 2


def test_cues_read_sidecar_spans_and_votes_only() -> None:
    from types import SimpleNamespace as NS

    v2 = NS(schema_version=2, insertions=[NS(first_frame=3, last_frame=7)])
    v1 = NS(schema_version=1)
    spans = insertion_spans({"a": v2, "b": v1})
    assert spans == {"a": [(3, 7)], "b": None}
    assert insertion_of(5, spans["a"]) == 0 and insertion_of(9, spans["a"]) == OUTSIDE
    assert insertion_of(5, None) is None
    cfg = GroupingConfig()
    weak = {**frame("x", "a", 4), "votes": [{"labeler": "barcode", "label": A, "confidence": 0.2}]}
    assert cue_of(weak, spans, cfg).barcode is None  # an unsure read is no evidence
    assert not same_item(cue_of(frame("x", "a", 4), spans, cfg), cue_of(frame("y", "b", 4), spans, cfg), cfg)
