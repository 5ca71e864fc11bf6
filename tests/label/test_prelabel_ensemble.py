"""The weighted vote and its human calibration (unit tests on hand-made votes)."""

from __future__ import annotations

import random

from flywheel.label.ensemble import MIN_REVIEWED, Calibration, decide, fit
from flywheel.label.prelabelers.base import Vote, abstain

A, B, C = "4000000000001", "4000000000002", "4000000000003"
VISION = {"barcode": False, "weight": False, "teacher": True, "reader": True}


def test_barcode_outvotes_a_weak_teacher_and_flags_the_mismatch() -> None:
    d = decide({"barcode": Vote(A, 0.95, "scan"), "teacher": Vote(B, 0.4, "model")}, Calibration(), VISION)
    assert d.label == A and d.disagreement and d.barcode_mismatch
    assert 0.5 < d.confidence < 1.0


def test_weight_narrows_but_never_decides_alone() -> None:
    w = Vote(None, 0.0, "ambiguous", "ambiguous", (A, B))
    alone = decide({"weight": Vote(A, 0.6, "step", None, (A,)), "teacher": abstain("sees_nothing")},
                   Calibration(), VISION)
    assert alone.label is None and alone.confidence == 0.0
    tie = decide({"teacher": Vote(C, 0.5, "m"), "reader": Vote(A, 0.25, "ocr"), "weight": w},
                 Calibration(), VISION)
    assert tie.label == A  # 2*0.25 + 0.5/2 beats 1*0.5 only because the weight fits A
    assert not tie.barcode_mismatch


def test_fit_learns_who_to_trust_and_calibrates() -> None:
    rng = random.Random(0)
    items = []
    for _ in range(300):
        truth = rng.choice([A, B, C])
        wrong = rng.choice([x for x in (A, B, C) if x != truth])
        teacher = truth if rng.random() < 0.3 else wrong  # poor
        reader = truth if rng.random() < 0.95 else wrong  # good
        items.append(({"teacher": Vote(teacher, 0.9, "m"), "reader": Vote(reader, 0.5, "o")}, truth))
    cal = fit(items, n_classes=3)
    assert cal.n_reviewed == 300 and cal.weights["reader"] > cal.weights["teacher"]
    assert cal.accuracy["reader"] > 0.9 and cal.accuracy["teacher"] < 0.4
    assert cal.version.startswith("human-")
    # calibrated: among confident decisions, the stated confidence tracks the hit rate
    decided = [(decide(v, cal, VISION), t) for v, t in items]
    hits = sum(d.label == t for d, t in decided) / len(decided)
    mean_conf = sum(d.confidence for d, _ in decided) / len(decided)
    assert hits > 0.9 and abs(mean_conf - hits) < 0.05
    assert Calibration.from_json(cal.to_json()) == cal


def test_too_few_reviews_keep_the_defaults() -> None:
    items = [({"teacher": Vote(A, 0.9, "m")}, A)] * (MIN_REVIEWED - 1)
    assert fit(items, 3) == Calibration()


def test_a_label_the_weight_rules_out_loses_most_of_its_score() -> None:
    w = Vote(None, 0.0, "ambiguous", "ambiguous", (A, B))
    votes = {"teacher": Vote(C, 0.9, "m"), "reader": Vote(A, 0.3, "ocr"), "weight": w}
    d = decide(votes, Calibration(), VISION)
    assert d.label == A and d.disagreement  # C (0.9 * 0.25) loses to A (0.6 + 0.25)
    alone = decide({"teacher": Vote(C, 0.9, "m"), "weight": w}, Calibration(), VISION)
    assert alone.label == C and alone.confidence < decide({"teacher": Vote(C, 0.9, "m")}, Calibration(),
                                                           VISION).confidence


def test_audit_answers_weigh_for_the_frames_they_stand_for() -> None:
    """The humans see every doubtful frame but only an audit sample of the accepted ones: weighted
    by the inverse of that rate, a labeler's accuracy is its accuracy over all frames."""
    rng = random.Random(3)
    items = []
    for i in range(400):  # doubtful frames (all reviewed): the barcode is often wrong there
        truth = rng.choice([A, B, C])
        bc = truth if i % 2 else rng.choice([x for x in (A, B, C) if x != truth])
        items.append(({"barcode": Vote(bc, 0.9, "scan")}, truth, 0.0, 1.0))
    for _ in range(20):  # 2 % of 1000 accepted frames, where the barcode is right
        items.append(({"barcode": Vote(A, 0.99, "scan")}, A, 0.0, 50.0))
    plain = fit([it[:3] for it in items], n_classes=3)
    weighted = fit(items, n_classes=3)
    assert plain.accuracy["barcode"] < 0.55
    assert abs(weighted.accuracy["barcode"] - (200 + 1000) / 1400) < 0.01
    assert weighted.weights["barcode"] > plain.weights["barcode"]


def test_candidates_are_the_ranked_labels_then_the_load_cells() -> None:
    from flywheel.label.ensemble import candidates

    votes = {"teacher": Vote(C, 0.9, "m"), "reader": Vote(A, 0.3, "ocr"),
             "weight": Vote(None, 0.0, "ambiguous", "ambiguous", (A, B))}
    d = decide(votes, Calibration(), VISION)
    assert d.ranked == (A, C)
    assert candidates(votes, d) == [A, C, B] and candidates(votes, d, k=2) == [A, C]
