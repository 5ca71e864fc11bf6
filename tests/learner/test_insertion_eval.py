"""Insertion-level evaluation on real simulator insertions with real barcode reads (zxing-cpp);
the model is a fake ONNX session that replays chosen logits, so the expected figures are known."""

from __future__ import annotations

import io

import numpy as np
import polars as pl
import pytest

from flywheel.learner.config import EMPTY_CLASS
from flywheel.learner.insertion_eval import evaluate_insertion_set, evaluate_insertions, insertion_truth
from flywheel.learner.labelled_frames import read_frames
from flywheel.sim import default_world
from flywheel.sim.insertions import build_insertion_test_set, export_insertion_set


class ReplaySession:
    """Stands in for an ONNX Runtime session: returns the given logits row by row, in call order."""

    def __init__(self, logits: np.ndarray) -> None:
        self.logits, self.pos = logits, 0

    def get_inputs(self):
        return [type("Input", (), {"name": "images"})()]

    def run(self, _outputs, feed):
        n = len(feed["images"])
        out = self.logits[self.pos:self.pos + n]
        self.pos += n
        return [out]


@pytest.fixture(scope="module")
def manual_insertions() -> pl.DataFrame:
    buf = io.BytesIO()
    export_insertion_set(build_insertion_test_set("manual", seed=0, n_insertions=8,
                                                  world=default_world(0)), buf)
    return read_frames(buf.getvalue())


def classes_of(frames: pl.DataFrame) -> list[str]:
    return sorted({*frames["sku"].drop_nulls().to_list(), EMPTY_CLASS})


def one_hot(frames: pl.DataFrame, classes: list[str], labels: list[str]) -> np.ndarray:
    logits = np.full((frames.height, len(classes)), -5.0, np.float32)
    for i, lab in enumerate(labels):
        logits[i, classes.index(lab)] = 5.0
    return logits


def test_a_right_model_decides_every_insertion(manual_insertions):
    frames = manual_insertions
    classes = classes_of(frames)
    truth = [s if s is not None else EMPTY_CLASS for s in frames["sku"].to_list()]
    m = evaluate_insertion_set(ReplaySession(one_hot(frames, classes, truth)), classes, 32, frames)
    assert m["n_insertions"] == 8 and m["n_frames"] == frames.height
    assert m["top1"] == m["top1_vote"] == m["frame_item_top1"] == 1.0


def test_barcode_reads_rescue_a_wrong_model_and_are_never_wrong(manual_insertions):
    frames = manual_insertions
    classes = classes_of(frames)
    truth = dict(insertion_truth(frames).iter_rows())
    wrong = [next(c for c in classes if c not in (EMPTY_CLASS, truth.get(i)))
             for i in frames["insertion_id"].to_list()]
    m = evaluate_insertion_set(ReplaySession(one_hot(frames, classes, wrong)), classes, 32, frames)
    assert m["top1_vote"] == 0.0 and m["frame_item_top1"] == 0.0
    assert m["barcode_precision"] == 1.0  # an EAN-13 read carries its checksum
    assert m["barcode_read_share"] > 0.5  # clean light: most insertions show their barcode
    assert m["top1"] == pytest.approx(m["barcode_read_share"])  # only the reads are right


def test_pooled_and_worst_set_metrics_and_slices(manual_insertions):
    frames = manual_insertions
    classes = classes_of(frames)
    first = frames["insertion_id"].unique(maintain_order=True).to_list()[:3]
    a = frames.filter(pl.col("insertion_id").is_in(first))
    b = frames.filter(~pl.col("insertion_id").is_in(first))
    truth_b = [s if s is not None else EMPTY_CLASS for s in b["sku"].to_list()]
    empty_a = [EMPTY_CLASS] * a.height  # set "a": the model sees nothing; the vote still decides
    logits = np.concatenate([one_hot(a, classes, empty_a), one_hot(b, classes, truth_b)])
    out = evaluate_insertions(ReplaySession(logits), classes, 32, {"a": a, "b": b})
    assert out["slices"]["ins:a"]["n"] == 3 and out["slices"]["ins:b"]["n"] == 5
    sa, sb = out["sets"]["a"], out["sets"]["b"]
    assert sb["top1"] == 1.0
    assert out["metrics"]["insertion_top1_min_set"] == sa["top1"]
    assert out["metrics"]["insertion_top1"] == pytest.approx((3 * sa["top1"] + 5) / 8)


def test_an_insertion_with_two_skus_is_refused():
    df = pl.DataFrame({"insertion_id": ["x", "x"], "sku": ["111", "222"]})
    with pytest.raises(ValueError, match="more than one SKU"):
        insertion_truth(df)
