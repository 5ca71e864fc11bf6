"""Review tasks ask for a box where the production detector misses the item; the simulated
annotator draws it (extreme clicking, billed) on the task's leader; the box reaches the batch."""

from __future__ import annotations

import random
from datetime import UTC, datetime

from edge_agent.contract.schemas import parse_correction_batch
from flywheel.label.annotator import AnnotatorConfig, annotate, drawn_box
from flywheel.label.box_requests import request_boxes
from flywheel.label.corrections import batch_doc
from flywheel.label.routing import Task

CATALOG = [f"40063813339{i:02d}" for i in range(30)]
NOW = datetime(2026, 11, 24, 18, 0, tzinfo=UTC)


def task(tid: str, frames: list[str], proposed: str | None, rank: int, draw_box: bool = False) -> Task:
    return Task(task_id=tid, kind="review", reason="low_confidence", frame_ids=frames,
                proposed_label=proposed, confidence=0.5, est_seconds=2.0, rank=rank, draw_box=draw_box)


def iou(a, b) -> float:
    w = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    h = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - w * h
    return w * h / union


def test_boxes_are_asked_where_the_detector_misses_in_queue_order_up_to_the_cap() -> None:
    conf = {"a": 0.9, "b": 0.1, "c": 0.0, "d": 0.2, "e": 0.05}
    tasks = [task("t-e", ["e"], None, 4), task("t-a", ["a", "x"], None, 0), task("t-b", ["b"], None, 1),
             task("t-c", ["c"], None, 2), task("t-d", ["d"], None, 3)]
    out = request_boxes(tasks, conf.get, 0.25, max_boxes=2, box_s=7.0)
    assert [t.task_id for t in out] == [t.task_id for t in tasks]  # order kept
    asked = {t.task_id: (t.draw_box, t.est_seconds) for t in out}
    # t-a is boxed (0.9 >= 0.25); b and c are the first two misses by rank; d and e wait (the cap)
    assert asked == {"t-a": (False, 2.0), "t-b": (True, 9.0), "t-c": (True, 9.0), "t-d": (False, 2.0),
                     "t-e": (False, 2.0)}
    # no detector (a one-stage production model): None asks nothing
    assert not any(t.draw_box for t in request_boxes(tasks, lambda f: None, 0.25, 10, 7.0))
    assert not any(t.draw_box for t in request_boxes(tasks, conf.get, 0.25, 0, 7.0))


def test_the_annotator_draws_the_asked_box_on_the_leader_and_bills_it() -> None:
    truth = {"a1": CATALOG[0], "a2": CATALOG[0], "b1": None, "c1": CATALOG[3]}.get
    true_box = {"a1": (100.0, 80.0, 180.0, 200.0), "a2": (110.0, 90.0, 190.0, 210.0),
                "c1": (10.0, 20.0, 60.0, 90.0)}.get
    tasks = [task("t-a", ["a1", "a2"], CATALOG[0], 0, draw_box=True),
             task("t-b", ["b1"], None, 1, draw_box=True),  # nothing there: no box, no extra cost
             task("t-c", ["c1"], CATALOG[3], 2)]  # not asked: no box
    out, rep = annotate(tasks, truth, CATALOG, AnnotatorConfig(error_rate=0.0), NOW, box_of=true_box)
    assert rep.boxes_drawn == 1 and rep.box_seconds == 7.0
    assert rep.seconds == 1.6 + 7.0 + 1.6 + 1.6
    boxed = {c["frame_id"]: c["box"] for c in out if "box" in c}
    assert set(boxed) == {"a1"} and iou(boxed["a1"], true_box("a1")) > 0.8
    # the box travels in a valid CorrectionBatchV1
    batch = parse_correction_batch(batch_doc("b1", "sim", out))
    assert [tuple(c.box) for c in batch.corrections if c.box is not None] == [tuple(boxed["a1"])]
    # without truth boxes (an older caller) nothing is drawn
    _, rep = annotate(tasks, truth, CATALOG, AnnotatorConfig(error_rate=0.0), NOW)
    assert rep.boxes_drawn == 0


def test_drawn_boxes_scatter_like_extreme_clicks() -> None:
    rng = random.Random(0)
    box = (200.0, 100.0, 300.0, 260.0)
    ious = [iou(drawn_box(box, AnnotatorConfig(), rng), box) for _ in range(2000)]
    assert 0.85 < sum(ious) / len(ious) < 0.95  # extreme clicking: mean IoU 0.88 (ICCV 2017)
    assert drawn_box(None, AnnotatorConfig(), rng) is None
