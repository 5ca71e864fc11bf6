"""Evaluation arithmetic on hand-made predictions: ECE, per-SKU accuracy, condition slices,
unknown classes counted as errors, and the comparison report."""

from __future__ import annotations

import json

import numpy as np
import polars as pl
import pytest

from flywheel.learner.evaluate import (
    Predictions,
    comparison_report,
    condition_slices,
    ece,
    set_metrics,
    softmax,
    true_labels,
)


def test_ece_known_values():
    assert ece(np.ones(10), np.ones(10, bool)) == pytest.approx(0.0)
    conf = np.full(10, 0.8)
    correct = np.array([True] * 5 + [False] * 5)
    assert ece(conf, correct) == pytest.approx(0.3)
    assert ece(np.zeros(0), np.zeros(0, bool)) == 0.0


def test_softmax_rows_sum_to_one_and_keep_argmax():
    logits = np.array([[2.0, 1.0, -3.0], [0.0, 50.0, 49.0]], np.float32)
    p = softmax(logits)
    assert np.allclose(p.sum(1), 1.0) and list(p.argmax(1)) == [0, 1]


def frames(rows):
    return pl.DataFrame([{"sku": s, "is_empty": e, "conditions": json.dumps(c)} for s, e, c in rows])


def test_set_metrics_per_sku_and_unknown_classes():
    df = frames([("111", False, {}), ("111", False, {}), ("222", False, {}), (None, True, {}),
                 ("999", False, {})])
    labels = true_labels(df)
    assert labels == ["111", "111", "222", "empty", "999"]
    pred = ["111", "222", "222", "empty", "111"]
    p = Predictions(labels, pred, np.array([0.9, 0.6, 0.8, 0.7, 0.5]),
                    np.array([a == b for a, b in zip(labels, pred, strict=True)]))
    m = set_metrics(df, p, ["111", "222", "empty"])
    assert m["top1"] == pytest.approx(3 / 5)
    assert m["per_sku"]["111"] == {"n": 2, "top1": 0.5}
    assert m["per_sku"]["999"] == {"n": 1, "top1": 0.0}
    assert m["frames_with_unknown_class"] == 1 and m["top1_known_classes"] == pytest.approx(3 / 4)


def test_condition_slices_use_the_strength_threshold():
    df = frames([("1", False, {"glare": 0.9, "noise": 0.1}), ("1", False, {"glare": 0.5, "noise": 0.7}),
                 ("1", False, {"glare": 0.2, "noise": 0.2}), (None, True, {"glare": 0.8, "noise": 0.0})])
    s = condition_slices(df, np.array([True, False, True, True]))
    assert s["cond:glare"] == {"n": 3, "top1": pytest.approx(2 / 3)}
    assert s["cond:noise"] == {"n": 1, "top1": 0.0}
    assert s["frame:empty"] == {"n": 1, "top1": 1.0} and s["frame:item"]["n"] == 3


def test_comparison_report_shows_deltas():
    cand = {"metrics": {"production_top1": 0.7}, "slices": {"set:A": {"n": 50, "top1": 0.6}}}
    prod = {"metrics": {"production_top1": 0.5}, "slices": {"set:A": {"n": 50, "top1": 0.65}}}
    md = comparison_report("cls-new", cand, "cls-old", prod)
    assert "| production_top1 | 0.7000 | 0.5000 | 0.2000 |" in md
    assert "| set:A | 50 | 0.6000 | 0.6500 | -0.0500 |" in md
    assert "production `none`" in comparison_report("cls-new", cand, None, None)
