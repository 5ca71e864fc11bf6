"""The shelf's short list (unit): frames no labeler narrowed get the SKUs people labelled in the same
store and aisle, then the rest of those catalog categories; such frames wait while other work
remains. The real review_queue asset runs it in test_routing_fleet.py."""

from __future__ import annotations

from collections import Counter

from flywheel.label.routing import DEFERRED, REVIEW, RoutingConfig, route_day
from flywheel.label.shelf import fill_lists, shelf_list, shelf_prior

A, B, C, D = "4000000000001", "4000000000002", "4000000000003", "4000000000004"
CATEGORY = {A: "coffee", B: "coffee", C: "tea", D: "pasta"}


def test_the_prior_counts_people_s_labels_per_shelf_and_ignores_no_product() -> None:
    prior = shelf_prior([(("S1", "S101"), A), (("S1", "S101"), A), (("S1", "S101"), None),
                         (("S1", "S102"), C), (("S1", None), D)])
    assert prior == {("S1", "S101"): Counter({A: 2}), ("S1", "S102"): Counter({C: 1})}
    # labelled here first, then the rest of the categories seen here; nothing for an unseen shelf
    assert shelf_list(prior, ("S1", "S101"), CATEGORY) == [A, B]
    assert shelf_list(prior, ("S1", "S101"), CATEGORY, k=1) == [A]
    assert shelf_list(prior, ("S2", "S201"), CATEGORY) == []


def test_only_frames_nothing_narrowed_get_the_shelf_list() -> None:
    prior = shelf_prior([(("S1", "S101"), C)])
    rows = [{"frame_id": "bare", "label": None, "candidates": []},
            {"frame_id": "weighed", "label": None, "candidates": [D]},
            {"frame_id": "named", "label": A, "candidates": [A]},
            {"frame_id": "elsewhere", "label": None, "candidates": []}]
    shelves = {"bare": ("S1", "S101"), "weighed": ("S1", "S101"), "named": ("S1", "S101"),
               "elsewhere": ("S1", "S109")}
    out = {r["frame_id"]: r for r in fill_lists(rows, shelves, prior, CATEGORY)}
    assert out["bare"]["candidates"] == [C] and out["bare"]["shelf_list"]
    assert out["weighed"] == rows[1] and out["named"] == rows[2] and out["elsewhere"] == rows[3]


def test_frames_without_evidence_wait_while_other_doubtful_work_remains() -> None:
    def row(fid: str, label: str | None, cands: list[str], **kw) -> dict:
        return {"frame_id": fid, "clip_id": fid, "label": label, "confidence": 0.5 if label else 0.0,
                "disagreement": False, "barcode_mismatch": False, "candidates": cands, **kw}

    rows = [row("bare", None, []), row("shelf", None, [C], shelf_list=True), row("weighed", None, [A, B]),
            row("low", A, [A], confidence=0.8)]  # a likely proposal: cheap to verify (max_task_s)
    r = route_day("2026-11-24", rows, RoutingConfig(audit_rate=0.0))
    by = {x["frame_id"]: x for x in r.routes}
    assert by["bare"]["route"] == by["shelf"]["route"] == DEFERRED
    assert by["bare"]["reason"].startswith("no evidence yet")
    assert by["weighed"]["route"] == by["low"]["route"] == REVIEW
    # once nothing else is doubtful they are asked (the next iteration, after the answers above)
    alone = route_day("2026-11-24", rows[:2], RoutingConfig(audit_rate=0.0))
    assert {t.frame_ids[0] for t in alone.tasks} == {"bare", "shelf"}
