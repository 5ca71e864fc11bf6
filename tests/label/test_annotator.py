"""The simulated annotator: answers from truth, its error rate, its time model, its batches."""

from __future__ import annotations

from datetime import UTC, datetime

from edge_agent.contract.schemas import parse_correction_batch
from flywheel.label.annotator import UNKNOWN, AnnotatorConfig, annotate, answered_task_ids, simulate_review
from flywheel.label.routing import Task

CATALOG = [f"40063813339{i:02d}" for i in range(30)]
NOW = datetime(2026, 11, 24, 18, 0, tzinfo=UTC)


def task(tid: str, frames: list[str], proposed: str | None, rank: int = 0, kind: str = "review") -> Task:
    return Task(task_id=tid, kind=kind, reason="low_confidence", frame_ids=frames, proposed_label=proposed,
                confidence=None if proposed is None else 0.5, est_seconds=0.0, rank=rank)


def test_time_model_verify_pick_and_group_expansion() -> None:
    truth = {"a1": CATALOG[0], "a2": CATALOG[0], "a3": CATALOG[0], "b1": CATALOG[1], "c1": None,
             "d1": CATALOG[2]}.get
    tasks = [task("review-1", ["a1", "a2", "a3"], CATALOG[0], 0),  # right proposal: one verification
             task("review-2", ["b1"], CATALOG[5], 1),  # wrong proposal: verify, then pick
             task("review-3", ["c1"], None, 2),  # nothing proposed, nothing there: one look
             task("review-4", ["d1"], None, 3)]  # nothing proposed, a product: pick from scratch
    out, rep = annotate(tasks, truth, CATALOG, AnnotatorConfig(error_rate=0.0), NOW)
    assert rep.seconds == 1.6 + (1.6 + 15.0) + 1.6 + 15.0 and rep.tasks_answered == 4
    assert rep.verify_only == 1
    assert [(c["frame_id"], c["action"], c["sku"]) for c in out] == [
        ("a1", "confirm", CATALOG[0]), ("a2", "confirm", CATALOG[0]), ("a3", "confirm", CATALOG[0]),
        ("b1", "relabel", CATALOG[1]), ("c1", "reject", None), ("d1", "relabel", CATALOG[2])]
    assert all(c["note"].startswith("task review-") for c in out)
    assert out[0]["corrected_at"] < out[3]["corrected_at"] < out[4]["corrected_at"]  # the clock runs


def test_a_mixed_group_is_answered_per_item_shown_at_the_cited_cost() -> None:
    # a person shown frames of two products and an empty cart answers each, not the first alone
    truth = {"m1": CATALOG[0], "m2": CATALOG[0], "m3": CATALOG[1], "m4": None, "m5": UNKNOWN}.get
    out, rep = annotate([task("review-1", ["m1", "m2", "m3", "m4", "m5"], CATALOG[0])], truth, CATALOG,
                        AnnotatorConfig(error_rate=0.0), NOW)
    assert [(c["frame_id"], c["action"], c["sku"]) for c in out] == [
        ("m1", "confirm", CATALOG[0]), ("m2", "confirm", CATALOG[0]), ("m3", "relabel", CATALOG[1]),
        ("m4", "reject", None)]  # m5: nothing the simulation knows, left open
    assert rep.items_answered == 3 and rep.mixed_tasks == 1 and rep.verify_only == 0
    assert rep.seconds == 1.6 + (1.6 + 15.0) + 1.6  # verify; verify then pick; verify the empty


def test_error_rate_is_honoured_and_unknown_frames_stay_open() -> None:
    tasks = [task(f"review-{i}", [f"f{i}"], CATALOG[i % 30], i) for i in range(4000)]
    truth = {f"f{i}": CATALOG[i % 30] for i in range(4000)}
    _, rep = annotate(tasks, truth.get, CATALOG, AnnotatorConfig(error_rate=0.02, seed=1), NOW)
    assert 0.013 < rep.wrong_answers / rep.tasks_answered < 0.027
    _, rep2 = annotate(tasks[:3], lambda f: UNKNOWN, CATALOG, AnnotatorConfig(), NOW)
    assert rep2.tasks_answered == 0 and rep2.tasks_without_truth == 3


def test_simulate_review_lands_one_contract_batch_and_answers_only_open_tasks(local_lake) -> None:
    tasks = [task("review-1", ["a1"], CATALOG[0]), task("review-2", ["b1"], CATALOG[1], 1)]
    truth = {"a1": CATALOG[0], "b1": CATALOG[2]}.get
    rep = simulate_review(local_lake, "2026-11-24", tasks, CATALOG, truth, AnnotatorConfig(error_rate=0.0),
                          NOW)
    batch = parse_correction_batch(local_lake.get(rep.batch_key))
    assert batch.tool == "flywheel-sim-annotator" and len(batch.corrections) == 2
    assert answered_task_ids(local_lake, "2026-11-24") == {"review-1", "review-2"}
    again = simulate_review(local_lake, "2026-11-24", tasks, CATALOG, truth, AnnotatorConfig(), NOW)
    assert again.tasks_answered == 0 and again.batch_key is None
    # a later session (a re-check) answers after the last answer, whatever the wall clock says
    recheck_task = task("conflict-3", ["b1"], CATALOG[1], kind="conflict")
    later = simulate_review(local_lake, "2026-11-24", [recheck_task], CATALOG, truth,
                            AnnotatorConfig(error_rate=0.0), NOW)
    first_end = max(c.corrected_at for c in batch.corrections)
    (recheck,) = parse_correction_batch(local_lake.get(later.batch_key)).corrections
    assert recheck.corrected_at > first_end and recheck.sku == CATALOG[2]


def test_a_candidate_list_is_scanned_down_to_the_answer() -> None:
    cands = [CATALOG[3], CATALOG[4], CATALOG[5]]
    tasks = [Task("review-1", "review", "abstain", ["a1"], None, None, 0.0, 0, cands),  # 2nd on the list
             Task("review-2", "review", "low_confidence", ["b1"], CATALOG[3], 0.5, 0.0, 1, cands)]
    truth = {"a1": CATALOG[4], "b1": CATALOG[9]}.get  # b1: not on the list, picked from the catalog
    _, rep = annotate(tasks, truth, CATALOG, AnnotatorConfig(error_rate=0.0), NOW)
    assert rep.seconds == 2 * 1.0 + (1.6 + 2 * 1.0 + 15.0)
