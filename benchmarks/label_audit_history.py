"""Benchmark and test data for the label audit: a merged-label history of a real simulated fleet
day (every Depot frame labelled with its ground truth: a SKU, or no product), a share of the labels
made wrong on purpose, and pre-labels holding the REAL barcode and weight labelers' votes (the weak
truth the audit reads). Evaluation code: it may read ground truth."""

from __future__ import annotations

import random
from typing import Any

from edge_agent.lake import Lake


def weak_prelabels(lake: Lake, day: str) -> int:
    """Run the barcode and weight labelers over the day's frames; write their votes as pre-labels."""
    from flywheel.label.catalog import read_catalog
    from flywheel.label.prelabel import load_inputs, vote_all
    from flywheel.label.prelabelers.barcode import BarcodeLabeler
    from flywheel.label.prelabelers.weight import WeightLabeler
    from flywheel.label.tables import labeler_versions_json, write_prelabels

    products = read_catalog(lake)
    labelers = [BarcodeLabeler({p.ean for p in products}), WeightLabeler(products)]
    inputs, keys, _ = load_inputs(lake, day)
    versions = {lab.name: lab.version for lab in labelers}
    rows = [{**key, "label": None, "confidence": 0.0, "disagreement": False, "barcode_mismatch": False,
             "labeler_versions": labeler_versions_json(versions),
             "votes": [{"labeler": n, "version": versions[n], "label": v.label,
                        "confidence": float(v.confidence), "evidence": v.evidence[:500],
                        "candidates": list(v.candidates)}
                       for n, v in fv.items()]}
            for key, fv in zip(keys, vote_all(labelers, inputs), strict=True)]
    return write_prelabels(lake, day, rows)


def noisy_history(lake: Lake, day: str, truth: dict[str, str | None], catalog: list[str], *,
                  wrong: float = 0.05, seed: int = 1) -> set[str]:
    """Write the day's merged labels (the truth, `wrong` of them replaced by another SKU or by "no
    product"); returns the frames made wrong."""
    from flywheel.label.merge import MergeResult, write_merged

    rng = random.Random(seed)
    ids = sorted(truth)
    bad = set(rng.sample(ids, round(wrong * len(ids))))
    rows: list[dict[str, Any]] = []
    for f in ids:
        label = rng.choice([s for s in [*catalog, None] if s != truth[f]]) if f in bad else truth[f]
        rows.append({"frame_id": f, "label": label, "source": "auto", "confidence": 0.95, "annotator": None,
                     "tool": "prelabel-ensemble", "task_id": None, "annotation_id": None,
                     "corrected_at": None, "previous_label": None, "route": "auto"})
    write_merged(lake, day, MergeResult(rows=rows, conflicts=[]))
    return bad


def precision_recall(suspects: list[dict[str, Any]], bad: set[str]) -> tuple[float, float]:
    flagged = {s["frame_id"] for s in suspects}
    hit = len(flagged & bad)
    return (hit / len(flagged) if flagged else 0.0), (hit / len(bad) if bad else 1.0)
