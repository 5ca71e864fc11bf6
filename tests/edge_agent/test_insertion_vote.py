"""The per-insertion decision: confidence vote over frames, a barcode read outranks it."""

from __future__ import annotations

import numpy as np
import pytest

from edge_agent.insertion import decide, vote

LABELS = ["empty", "111", "222", "333"]


def test_vote_sums_confidence_and_ignores_frames_that_see_nothing():
    probs = np.array([
        [0.90, 0.05, 0.03, 0.02],  # sees nothing: abstains
        [0.10, 0.20, 0.65, 0.05],  # a confident 222
        [0.05, 0.50, 0.40, 0.05],  # a doubtful 111
        [0.05, 0.45, 0.45, 0.05],
    ])
    label, conf, n = vote(probs, LABELS)
    assert (label, n) == ("222", 3)  # 0.65 + 0.40 + 0.45 beats 0.20 + 0.50 + 0.45
    assert conf == pytest.approx((0.65 + 0.40 + 0.45) / 3)


def test_vote_majority_of_frames_can_lose_to_confidence():
    probs = np.array([[0.0, 0.34, 0.33, 0.33]] * 2 + [[0.0, 0.02, 0.96, 0.02]])
    assert vote(probs, LABELS)[0] == "222"  # two weak 111 frames vs one sure 222


def test_all_frames_empty_still_decide_from_product_mass_with_low_confidence():
    probs = np.array([[0.8, 0.05, 0.12, 0.03], [0.7, 0.1, 0.15, 0.05]])
    label, conf, n = vote(probs, LABELS)
    assert (label, n) == ("222", 0) and conf == pytest.approx(0.135)


def test_no_frames_and_no_product_labels():
    assert vote(np.zeros((0, 4)), LABELS) == (None, 0.0, 0)
    assert vote(np.ones((2, 1)), ["none"]) == (None, 0.0, 0)
    d = decide(np.zeros((0, 4)), LABELS)
    assert (d.label, d.source, d.n_frames) == (None, "none", 0)


def test_barcode_read_outranks_the_vote_and_unknown_codes_are_ignored():
    probs = np.array([[0.0, 0.9, 0.05, 0.05]] * 3)
    d = decide(probs, LABELS, [None, "333", None])
    assert (d.label, d.source, d.barcode, d.confidence) == ("333", "barcode", "333", 1.0)
    assert (d.vote_label, d.n_frames, d.n_voting) == ("111", 3, 3)
    # a code outside the known catalog (a misread, another shop's label) does not count
    d = decide(probs, LABELS, ["999", None, None], known={"111", "222", "333"})
    assert (d.label, d.source, d.barcode) == ("111", "vote", None)


def test_conflicting_reads_most_frequent_then_the_vote_breaks_ties():
    probs = np.array([[0.0, 0.1, 0.8, 0.1]] * 4)
    d = decide(probs, LABELS, ["111", "333", "333", None])
    assert (d.label, d.confidence) == ("333", pytest.approx(2 / 3))
    d = decide(probs, LABELS, ["111", "222"])
    assert d.label == "222"  # one read each: the code the model prefers
    # a read of a code the model has no class for (a new SKU) still decides the insertion
    d = decide(probs, LABELS, ["4006381333931"])
    assert d.label == "4006381333931" and d.vote_label == "222"


# -- the device's tracker: insertions found in the frame stream ---------------------------------

def _frame(label: str, p: float) -> dict[str, float]:
    rest = (1.0 - p) / (len(LABELS) - 1)
    return {lab: (p if lab == label else rest) for lab in LABELS}


def test_tracker_opens_on_a_product_and_decides_after_the_gap():
    from edge_agent.insertion import InsertionTracker

    tr = InsertionTracker(gap_frames=2)
    stream = [("empty", 0.9), ("111", 0.6), ("222", 0.5), ("111", 0.8), ("empty", 0.9),
              ("empty", 0.9), ("empty", 0.9)]
    out = [tr.update(i / 10, _frame(lab, p)) for i, (lab, p) in enumerate(stream)]
    assert out[:5] == [None] * 5 and out[6] is None
    d = out[5]  # closed by the second frame seeing nothing
    assert (d.label, d.source, d.n_frames, d.n_voting) == ("111", "vote", 3, 3)
    assert (d.first_t, d.last_t) == (0.1, 0.3) and tr.closed == 1 and not tr.open
    assert d.confidence == pytest.approx((0.6 + 0.5 / 3 + 0.8) / 3)


def test_tracker_barcode_only_frames_count_and_the_read_decides():
    from edge_agent.insertion import InsertionTracker

    tr = InsertionTracker(gap_frames=1)
    assert tr.update(0.0, _frame("empty", 0.7), ["333"]) is None  # a read opens the insertion
    assert tr.update(0.1, _frame("222", 0.4)) is None
    d = tr.update(0.2, _frame("empty", 0.9))
    assert (d.label, d.source, d.barcode, d.vote_label, d.n_frames) == ("333", "barcode", "333", "222", 2)


def test_tracker_closes_long_insertions_and_on_demand():
    from edge_agent.insertion import InsertionTracker

    tr = InsertionTracker(gap_frames=3, max_frames=4)
    got = [tr.update(i / 10, _frame("222", 0.9)) for i in range(6)]
    assert [g is not None for g in got] == [False, False, False, True, False, False]
    d = tr.close()  # end of stream: the open insertion (frames 4, 5) is decided now
    assert d.n_frames == 2 and d.label == "222" and tr.close() is None
    with pytest.raises(ValueError):
        InsertionTracker(gap_frames=0)


def test_tracker_votes_across_label_spaces_and_top1_only_predictions():
    """A model hot-swapped mid-insertion, or one that gives only its top-1: every frame still votes."""
    from edge_agent.insertion import InsertionTracker

    tr = InsertionTracker(gap_frames=1)
    tr.update(0.0, {"none": 0.1, "111": 0.9})
    tr.update(0.1, {"empty": 0.2, "111": 0.3, "444": 0.5})
    d = tr.update(0.2, {"none": 0.95})
    assert d.label == "111" and d.confidence == pytest.approx((0.9 + 0.3) / 2)
