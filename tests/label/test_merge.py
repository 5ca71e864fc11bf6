"""Merge rules: human beats auto, later human beats earlier, independent disagreement -> queue."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from edge_agent.contract.schemas import parse_correction_batch
from flywheel.label.corrections import batch_doc
from flywheel.label.merge import merge_day, read_conflicts, read_merged, write_merged

A, B, C = "4006381333931", "5012345678900", "8712345678906"
T0 = datetime(2026, 11, 24, 12, 0, tzinfo=UTC)


def batch(batch_id: str, *corrections: dict, tool: str = "label-studio"):
    full = [{"action": "relabel", "annotator": "ann-1", "corrected_at": T0, "note": "", **c}
            for c in corrections]
    return parse_correction_batch(batch_doc(batch_id, tool, full, exported_at=T0))


def routes() -> list[dict]:
    return [
        {"frame_id": "f-auto", "route": "auto", "task_id": None, "label": A, "confidence": 0.97},
        {"frame_id": "f-rev", "route": "review", "task_id": "review-1", "label": A, "confidence": 0.5},
        {"frame_id": "f-open", "route": "review", "task_id": "review-2", "label": A, "confidence": 0.4},
        {"frame_id": "f-def", "route": "deferred", "task_id": None, "label": A, "confidence": 0.3},
        {"frame_id": "f-aud", "route": "audit", "task_id": "audit-1", "label": A, "confidence": 0.99},
    ]


def test_auto_and_human_rows_with_provenance() -> None:
    b = batch("b1", {"frame_id": "f-rev", "sku": B, "previous_sku": A, "note": "task review-1"},
              {"frame_id": "f-aud", "action": "confirm", "sku": None, "previous_sku": A})
    res = merge_day(routes(), [b])
    by = {r["frame_id"]: r for r in res.rows}
    assert set(by) == {"f-auto", "f-rev", "f-aud"}  # open and deferred: no label yet
    auto = by["f-auto"]
    assert auto["source"] == "auto" and auto["label"] == A and auto["confidence"] == 0.97
    rev = by["f-rev"]
    assert (rev["source"], rev["label"], rev["previous_label"], rev["annotator"], rev["tool"]) == \
        ("human", B, A, "ann-1", "label-studio")
    assert rev["task_id"] == "review-1" and rev["annotation_id"] == "b1:0" and rev["corrected_at"] == T0
    assert by["f-aud"]["label"] == A and by["f-aud"]["source"] == "human"  # a confirm keeps what was shown
    assert res.counts == {"auto": 1, "human": 2, "conflicts": 0, "pending": 2, "human_changed": 1, "held": 0}
    assert res.audit["n"] == 1 and res.audit["errors"] == 0


def test_later_knowing_human_beats_earlier_and_independent_disagreement_is_a_conflict() -> None:
    early = batch("b1", {"frame_id": "f-rev", "sku": B, "previous_sku": A},
                  {"frame_id": "f-open", "sku": B, "previous_sku": A})
    late = batch("b2",
                 # the same annotator changes their mind
                 {"frame_id": "f-rev", "sku": C, "previous_sku": A, "corrected_at": T0 + timedelta(hours=1)},
                 # a second annotator, shown the pre-label only, disagrees with the first
                 {"frame_id": "f-open", "action": "confirm", "sku": A, "previous_sku": A,
                  "annotator": "ann-2", "corrected_at": T0 + timedelta(hours=1)})
    res = merge_day(routes(), [late, early])  # batch order does not matter: time does
    by = {r["frame_id"]: r for r in res.rows}
    assert by["f-rev"]["label"] == C and by["f-rev"]["previous_label"] == B
    assert "f-open" not in by and [c["frame_id"] for c in res.conflicts] == ["f-open"]
    # a reviewer who was shown the dispute (a conflict task) settles it
    settle = batch("b3", {"frame_id": "f-open", "sku": B, "previous_sku": A, "annotator": "ann-3",
                          "corrected_at": T0 + timedelta(hours=2), "note": "task conflict-20261124-ab"})
    res2 = merge_day(routes(), [early, late, settle])
    by2 = {r["frame_id"]: r for r in res2.rows}
    assert by2["f-open"]["label"] == B and by2["f-open"]["task_id"] == "conflict-20261124-ab"
    assert res2.conflicts == []


def test_reviewer_correcting_a_human_label_wins() -> None:
    first = batch("b1", {"frame_id": "f-rev", "sku": B, "previous_sku": A})
    review = batch("b2", {"frame_id": "f-rev", "sku": C, "previous_sku": B, "annotator": "qa-1",
                          "corrected_at": T0 + timedelta(minutes=5)})
    (row,) = [r for r in merge_day(routes(), [first, review]).rows if r["frame_id"] == "f-rev"]
    assert row["label"] == C and row["annotator"] == "qa-1"


def test_reject_is_an_empty_label_and_audit_errors_are_counted() -> None:
    b = batch("b1", {"frame_id": "f-aud", "action": "reject", "sku": None, "previous_sku": A})
    res = merge_day(routes(), [b])
    (row,) = [r for r in res.rows if r["frame_id"] == "f-aud"]
    assert row["label"] is None and row["source"] == "human"
    assert res.audit["n"] == 1 and res.audit["errors"] == 1 and res.audit["ci_high"] == 1.0


def test_rewrite_is_idempotent(local_lake) -> None:
    b = batch("b1", {"frame_id": "f-rev", "sku": B, "previous_sku": A})
    write_merged(local_lake, "2026-11-24", merge_day(routes(), [b]))
    first = local_lake.get("label/merged/date=2026-11-24/merged.parquet")
    write_merged(local_lake, "2026-11-24", merge_day(routes(), [b]))
    assert local_lake.get("label/merged/date=2026-11-24/merged.parquet") == first
    assert read_merged(local_lake, "2026-11-24").num_rows == 3
    assert read_conflicts(local_lake, "2026-11-24") == ({}, {})


def test_audit_answers_still_count_after_the_frame_is_routed_human() -> None:
    # next iteration: the audited frame is routed `human`; its correction names its audit task
    later = [{**r, "route": "human", "task_id": None} if r["frame_id"] == "f-aud" else r for r in routes()]
    b = batch("b1", {"frame_id": "f-aud", "sku": B, "previous_sku": A, "note": "task audit-20261124-01"})
    res = merge_day(later, [b])
    assert res.audit["n"] == 1 and res.audit["errors"] == 1
    (row,) = [r for r in res.rows if r["frame_id"] == "f-aud"]
    assert row["task_id"] == "audit-20261124-01"


def test_a_human_label_the_frame_rules_out_is_held_until_a_conflict_task_settles_it(local_lake) -> None:
    """The annotator's slips: a barcode decoded on the frame itself, or the load cell's candidates,
    rule the answer out -> not merged, back to the queue as a conflict; the second look is final."""
    from flywheel.label.routing import CONFLICT, RoutingConfig, contradiction, route_day

    decoded = {"labeler": "barcode", "label": A, "confidence": 0.99, "candidates": None}
    propagated = {"labeler": "barcode", "label": A, "confidence": 0.93, "candidates": None}
    weight = {"labeler": "weight", "label": None, "confidence": 0.0, "candidates": [A, C]}
    assert contradiction({"votes": [decoded]}, B) == "barcode"
    assert contradiction({"votes": [decoded]}, None) == "barcode"  # "no product" on a decoded frame
    assert contradiction({"votes": [decoded]}, A) is None
    assert contradiction({"votes": [propagated]}, B) is None  # an inherited read is not evidence enough
    assert contradiction({"votes": [weight]}, B) == "load cell"
    assert contradiction({"votes": [weight]}, C) is None
    assert contradiction({"votes": [weight]}, None) is None  # a frame before the item came into view

    pre = {"f-rev": {"votes": [decoded]}, "f-open": {"votes": [weight]}}
    slips = batch("b1", {"frame_id": "f-rev", "sku": B, "previous_sku": A, "note": "task review-1"},
                  {"frame_id": "f-open", "sku": C, "previous_sku": A, "note": "task review-2"})
    res = merge_day(routes(), [slips], pre)
    by = {r["frame_id"]: r for r in res.rows}
    assert "f-rev" not in by and by["f-open"]["label"] == C  # C fits the load cell
    assert res.counts["held"] == 1 and [c["frame_id"] for c in res.conflicts] == ["f-rev"]
    write_merged(local_lake, "2026-11-24", res)
    # routed as a conflict task next, which shows the true reason (not "humans disagree")
    conflicts, why = read_conflicts(local_lake, "2026-11-24")
    assert conflicts == {"f-rev": B} and why == {"f-rev": "human vs barcode"}
    again = route_day("2026-11-24", [{"frame_id": "f-rev", "clip_id": "c1", "label": A, "confidence": 0.99,
                                      "votes": [decoded]}], RoutingConfig(audit_rate=0.0),
                      conflicts=conflicts, conflict_reasons=why)
    assert [(t.kind, t.frame_ids, t.proposed_label, t.reason) for t in again.tasks] == [
        (CONFLICT, ["f-rev"], B, "human vs barcode")]
    settle = batch("b2", {"frame_id": "f-rev", "sku": A, "previous_sku": B, "note": "task conflict-9",
                          "corrected_at": T0 + timedelta(minutes=5)})
    res2 = merge_day(routes(), [slips, settle], pre)
    assert {r["frame_id"]: r["label"] for r in res2.rows}["f-rev"] == A and res2.counts["held"] == 0
    stubborn = batch("b3", {"frame_id": "f-rev", "sku": B, "previous_sku": A, "note": "task conflict-9",
                            "annotator": "ann-2", "corrected_at": T0 + timedelta(minutes=5)})
    res3 = merge_day(routes(), [slips, stubborn], pre)  # a second look is final, whatever the barcode says
    assert {r["frame_id"]: r["label"] for r in res3.rows}["f-rev"] == B


def test_a_dispute_between_humans_says_so_and_an_older_conflicts_table_reads_as_one(local_lake) -> None:
    import pyarrow as pa

    from flywheel.label.merge import _put, merged_key

    two = [batch("b1", {"frame_id": "f-rev", "sku": B, "previous_sku": A}),
           batch("b2", {"frame_id": "f-rev", "sku": C, "previous_sku": A, "annotator": "ann-2"})]
    write_merged(local_lake, "2026-11-24", merge_day(routes(), two))
    assert read_conflicts(local_lake, "2026-11-24") == ({"f-rev": C}, {"f-rev": "humans disagree"})
    old = pa.table({"frame_id": ["f-rev"], "latest_label": [C], "labels": ["[]"]})  # before the reason column
    _put(local_lake, merged_key("2026-11-24", "conflicts.parquet"), old)
    assert read_conflicts(local_lake, "2026-11-24") == ({"f-rev": C}, {"f-rev": "humans disagree"})
