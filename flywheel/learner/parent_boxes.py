"""Boxes for item labels that came without one, from the production model's own detector.

A fleet label is a whole-frame answer: the annotator names the product, an auto label comes from
the pre-labellers, neither draws a box. The two-stage crop classifier needs one per item frame, so
without this every fleet label was dropped and a turn could not gain (bench_flywheel, turn 1: 148
merged labels, 0 reached the model). The device crops at its detector's best box, so the parent's
detector box is the crop the device will classify; only a box the device itself trusts
(score >= `roi.min_confidence`) is used. These boxes teach the crop classifier only: the detector
keeps learning from drawn and simulated boxes (its own predictions add nothing to it, and weak
ones taught it to box empty carts: README, "Federated").
"""

from __future__ import annotations

from pathlib import Path

import polars as pl

from edge_agent.lake import Lake


def box_unboxed(lake: Lake, parent_id: str | None, unboxed: pl.DataFrame, min_confidence: float,
                work: Path) -> tuple[pl.DataFrame, pl.DataFrame]:
    """(the `unboxed` item rows the parent's detector boxed with a score of at least
    `min_confidence`, item_box filled; the rows still without a box). Without a two-stage parent
    nothing is boxed."""
    from flywheel.learner import registry
    from flywheel.learner.two_stage import detector_boxes

    card = registry.read_card(lake, parent_id) if parent_id and not unboxed.is_empty() else None
    if card is None or registry.DETECTOR_FILE not in card.files:
        return unboxed.head(0), unboxed
    h, w = card.preprocessing["two_stage"]["detector"]["input_size"]
    onnx = registry.fetch_file(lake, card.model_id, registry.DETECTOR_FILE, work)
    found = detector_boxes(onnx, unboxed["image_png"].to_list(), (int(h), int(w)))
    keep = pl.Series([score >= min_confidence for _, score in found])
    boxed = unboxed.with_columns(pl.Series("item_box", [b for b, _ in found],
                                           dtype=unboxed.schema["item_box"]))
    return boxed.filter(keep), unboxed.filter(~keep)
