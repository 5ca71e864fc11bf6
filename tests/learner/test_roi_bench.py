"""The two-stage benchmark's hand-off logic: box overlap, the crop, and how P(empty) is formed from the
detector's box confidence and the crop classifier's probabilities (benchmarks/bench_learner_roi.py)."""

from __future__ import annotations

import numpy as np
import pytest

from benchmarks.bench_learner_roi import frame_probs, iou, square_crop


def test_iou_of_boxes_and_missing_boxes():
    assert iou(np.array([0, 0, 10, 10.0]), np.array([0, 0, 10, 10.0])) == 1.0
    assert iou(np.array([0, 0, 10, 10.0]), np.array([5, 0, 15, 10.0])) == pytest.approx(50 / 150)
    assert iou(np.array([0, 0, 10, 10.0]), np.array([20, 20, 30, 30.0])) == 0.0
    assert iou(np.full(4, np.nan), np.array([0, 0, 10, 10.0])) == 0.0


def test_square_crop_centres_the_box_and_repeats_edge_pixels():
    img = np.zeros((240, 320, 3), np.uint8)
    img[100:140, 150:170] = 255  # a 20 x 40 package
    crop = square_crop(img, (150, 100, 170, 140), 32, margin=1.0)
    assert crop.shape == (32, 32, 3)
    assert crop[:, 8:24].min() == 255 and crop[:, :7].max() == 0  # the package fills the middle
    edge = square_crop(img, (0, 0, 20, 20), 16)  # past the frame: edge pixels, no error
    assert edge.shape == (16, 16, 3)


def test_empty_rules():
    out = {"conf": np.array([0.9, 0.3, 0.0]), "q": np.array([[0.6, 0.4], [0.7, 0.3], [0.0, 0.0]])}
    prod = frame_probs(out, "product", 0.0)
    np.testing.assert_allclose(prod[0], [0.1, 0.54, 0.36])
    np.testing.assert_allclose(prod[1], [0.7, 0.21, 0.09])  # a doubtful box: empty wins
    np.testing.assert_allclose(prod[2], [1, 0, 0])
    gate = frame_probs(out, "gate", 0.25)
    np.testing.assert_allclose(gate, [[0, 0.6, 0.4], [0, 0.7, 0.3], [1, 0, 0]])
    weak = frame_probs(out, "gate", 0.5)[1]  # under the threshold: empty, the SKUs keep a little
    np.testing.assert_allclose(weak, [0.7, 0.21, 0.09])
    with_empty = {"conf": np.array([0.9, 0.9]), "q": np.array([[0.8, 0.1, 0.1], [0.1, 0.3, 0.6]]),
                  "cls_empty": True}
    np.testing.assert_allclose(frame_probs(with_empty, "cls", 0.25), with_empty["q"])
    np.testing.assert_allclose(frame_probs(with_empty, "gate", 0.25)[0], [0, 0.5, 0.5])
    with pytest.raises(ValueError, match="empty class"):
        frame_probs(out, "cls", 0.25)
