"""Human-calibrated labelling from the lake: the review stage's merged labels (source "human") joined
with the pre-labels' votes and the filter's empty_score become the ensemble's training items."""

from __future__ import annotations

import random

import pyarrow as pa
import pyarrow.parquet as pq

from edge_agent.lake import Lake
from flywheel.label import tables
from flywheel.label.ensemble import fit
from flywheel.label.prelabel import reviewed_items

A, B = "4000000000001", "4000000000002"
DAY = "2026-11-24"


def test_reviewed_items_feed_the_fit(tmp_path) -> None:
    lake = Lake.at_path(tmp_path)
    rng = random.Random(1)
    pre, cand, merged = [], [], []
    for i in range(80):
        truth = A if i % 2 else B
        teacher = truth if rng.random() < 0.5 else (B if truth == A else A)
        key = {"frame_id": f"c-{i:06d}", "clip_id": "c", "date": DAY, "store_id": "s", "device_id": "d",
               "frame_index": i, "t_s": i / 10}
        votes = [{"labeler": "barcode", "version": "1", "label": truth, "confidence": 0.95,
                  "evidence": "scan"},
                 {"labeler": "teacher", "version": "t", "label": teacher, "confidence": 0.9, "evidence": "m"}]
        pre.append({**key, "label": truth, "confidence": 0.9, "votes": votes, "labeler_versions": "{}",
                    "disagreement": teacher != truth, "barcode_mismatch": teacher != truth})
        cand.append({**key, "kept": True, "empty_score": 0.1, "reason": "insertion"})
        task = "audit-20261124-x" if i < 10 else "review-20261124-y"
        merged.append({"frame_id": key["frame_id"], "label": truth, "source": "human" if i < 60 else "auto",
                       "task_id": task})
    tables.write_prelabels(lake, DAY, pre)
    tables.write_candidates(lake, DAY, cand)
    sink = pa.BufferOutputStream()
    pq.write_table(pa.Table.from_pylist(merged), sink)
    lake.put(f"{tables.MERGED}/date={DAY}/merged.parquet", sink.getvalue().to_pybytes())
    items = reviewed_items(lake)
    assert len(items) == 60 and all(es == 0.1 for _, _, es, _ in items)  # humans only
    # an audit answer stands for the accepted frames it was drawn from: 10 audited of 10 + 20 auto
    assert sorted({w for *_, w in items}) == [1.0, 3.0] and sum(w == 3.0 for *_, w in items) == 10
    legacy = reviewed_items(lake, audit_rate=0.02)  # a proportional draw: 1 / the rate
    assert sorted({w for *_, w in legacy}) == [1.0, 50.0]
    cal = fit(items, n_classes=2)
    assert cal.n_reviewed == 60 and cal.accuracy["barcode"] == 1.0
    assert cal.weights["barcode"] > cal.weights["teacher"]
    assert reviewed_items(Lake.at_path(tmp_path / "empty")) == []
