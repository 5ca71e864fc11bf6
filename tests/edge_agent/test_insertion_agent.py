"""The agent decides each insertion on the device: the decision goes into the sidecar (V2) and the
per-insertion low-confidence trigger fires once per uncertain insertion, not on every doubtful frame."""

from __future__ import annotations

import numpy as np

from edge_agent.contract import parse_sidecar
from edge_agent.model import Prediction
from edge_agent.triggers import build_rule_set
from tests.edge_agent.conftest import EAN_A, EAN_B, LABELS, lake_clips, scripted_frames


class Scripted:
    """A model whose per-frame probabilities are given (which insertion and how sure)."""

    version = "scripted-1"
    labels = LABELS

    def __init__(self, script: dict[range, tuple[str, float]]) -> None:
        self.script, self.i = script, 0

    def predict(self, image) -> Prediction:
        label, p = next((v for r, v in self.script.items() if self.i in r), ("none", 0.95))
        self.i += 1
        probs = np.full(len(LABELS), (1 - p) / (len(LABELS) - 1))
        probs[LABELS.index(label)] = p
        return Prediction(None if label == "none" else label, p, 0.1, probs, LABELS)


def test_uncertain_fires_once_per_uncertain_insertion_and_the_sidecar_carries_it(
        local_lake, make_agent) -> None:
    # two insertions: a doubtful one (frames 10-17, mean 0.40) and a sure one (frames 40-45, 0.9);
    # every frame of the first is below 0.5: the per-frame rule would fire 8 times
    model = Scripted({range(10, 18): (EAN_A, 0.40), range(40, 46): (EAN_B, 0.9)})
    rules = build_rule_set("ins-1", [
        {"name": "uncertain", "when": 'low_confidence(0.5, "insertion")', "priority": 1},
        {"name": "doubtful_frame", "when": "low_confidence(0.5)", "priority": 5}])
    agent = make_agent(local_lake, rules=rules)
    agent.model = model
    for f in scripted_frames(70):
        agent.process(f)
    totals = agent.close(drain_timeout=30)
    assert totals["fires"]["uncertain"] == 1  # the insertion closed at frame 20 (3 idle frames)
    assert totals["fires"]["doubtful_frame"] == 8
    assert totals["insertions"] == 2 and totals["insertions_low_confidence"] == 1
    docs = [parse_sidecar(local_lake.get(k)) for k in lake_clips(local_lake)[1]]
    assert len(docs) == 1 and docs[0].schema_version == 2
    doc = docs[0]
    fired = next(t for t in doc.triggers if t.rule.startswith("uncertain"))
    assert fired.value == 0.4 and fired.signals["insertion_label"] == EAN_A
    (ins,) = doc.insertions
    assert (ins.label, ins.source, ins.n_frames, ins.n_voting) == (EAN_A, "vote", 8, 8)
    assert ins.last_frame == fired.frame and abs(ins.confidence - 0.4) < 1e-9
    # the clip starts 1 s (pre-roll) before the firing frame, so it holds the insertion from its
    # start: stream frames 10 (first) to 20 (closing: the third frame seeing nothing)
    assert ins.last_frame - ins.first_frame == 10 and not ins.began_before_clip
    assert doc.frames[ins.first_frame].prediction == EAN_A
    assert doc.frames[ins.first_frame - 1].prediction is None


def test_a_clip_that_ends_mid_insertion_records_the_decision_so_far_marked_open(
        local_lake, make_agent) -> None:
    # one long insertion (stream frames 10-65, open when the stream ends; the tracker closes one at
    # 60 frames): two doubtful frames at its start fire the capture, whose post-roll (0.3 s) ends
    # long before the insertion does
    model = Scripted({range(10, 12): (EAN_A, 0.40), range(12, 66): (EAN_A, 0.9)})
    rules = build_rule_set("ins-open", [{"name": "doubtful_frame", "when": "low_confidence(0.5)",
                                         "priority": 5}])
    agent = make_agent(local_lake, rules=rules)
    agent.model = model
    for f in scripted_frames(66):
        agent.process(f)
    assert agent.insertions.open
    totals = agent.close(drain_timeout=30)
    # counted (and able to fire a trigger) only when a frame closes it: the stream's end does not
    assert totals["insertions"] == 0
    docs = [parse_sidecar(local_lake.get(k)) for k in lake_clips(local_lake)[1]]
    assert len(docs) == 1
    doc = docs[0]
    (ins,) = doc.insertions
    assert ins.ended_after_clip and not ins.began_before_clip
    assert ins.last_frame == doc.clip.frame_count - 1
    assert doc.frames[ins.first_frame].prediction == EAN_A
    assert doc.frames[ins.first_frame - 1].prediction is None
    assert (ins.label, ins.source) == (EAN_A, "vote")
    assert ins.n_frames == ins.last_frame - ins.first_frame + 1  # the frames seen up to the clip's end
    assert 0.4 < ins.confidence < 0.9


def test_peek_decides_the_open_insertion_without_closing_it() -> None:
    from edge_agent.insertion import InsertionTracker

    tracker = InsertionTracker(gap_frames=2)
    assert tracker.peek() is None
    tracker.update(0.0, {EAN_A: 0.8, "none": 0.2})
    tracker.update(0.1, {EAN_A: 0.6, "none": 0.4}, [EAN_B])
    seen = tracker.peek()
    assert seen is not None and seen.open
    assert (seen.label, seen.source, seen.n_frames) == (EAN_B, "barcode", 2)
    assert tracker.open and tracker.closed == 0
    tracker.update(0.2, {"none": 1.0})
    final = tracker.update(0.3, {"none": 1.0})
    assert final is not None and not final.open and final.n_frames == 2 and tracker.closed == 1
