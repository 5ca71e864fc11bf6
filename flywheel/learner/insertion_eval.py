"""Insertion-level evaluation: one decision per inserted item, as the device makes it.

Each frozen insertion set holds every frame of whole insertions (approach, hold, drop; see
flywheel/sim/insertions.py). The ONNX model classifies every frame, the edge agent's own barcode
reader (zxing-cpp, EAN/UPC) reads every frame, and `edge_agent.insertion.decide` fuses them:
a barcode read wins, else the confidence vote. Reported per set: `top1` (fused, what the cart
gets), `top1_vote` (the model alone), the barcode read share and its precision, the decision's
calibration (ECE), and frame-level top-1 on the same frames for comparison.
"""

from __future__ import annotations

import io

import numpy as np
import polars as pl

from flywheel.learner.evaluate import ece, frame_probs

INSERTION_SLICE_PREFIX = "ins:"  # slices "ins:<set>" (n = insertions) join the gate's slice rule


def read_barcodes(pngs: list[bytes]) -> list[str | None]:
    """The first EAN/UPC text zxing-cpp reads in each frame (None when nothing is read)."""
    from PIL import Image

    from edge_agent.triggers.signals import BarcodeReader

    reader = BarcodeReader()
    out: list[str | None] = []
    for data in pngs:
        with Image.open(io.BytesIO(data)) as im:
            hits = reader.read(np.asarray(im.convert("RGB")))
        out.append(hits[0].text if hits else None)
    return out


def insertion_truth(frames: pl.DataFrame) -> pl.DataFrame:
    """insertion_id -> the SKU inserted (the one SKU its item frames carry)."""
    truth = (frames.filter(pl.col("sku").is_not_null()).group_by("insertion_id", maintain_order=True)
             .agg(pl.col("sku").unique().alias("skus")))
    bad = truth.filter(pl.col("skus").list.len() != 1)
    if bad.height:
        raise ValueError(f"{bad.height} insertion(s) carry more than one SKU, "
                         f"e.g. {bad['insertion_id'][0]}: not an insertion set")
    return truth.with_columns(pl.col("skus").list.first().alias("sku")).select("insertion_id", "sku")


def evaluate_insertion_set(session, classes: list[str], imgsz: int, frames: pl.DataFrame,
                           known: set[str] | None = None, wb: str = "none") -> dict:
    from edge_agent.insertion import decide

    probs = frame_probs(session, frames, len(classes), imgsz, wb=wb)
    codes = read_barcodes(frames["image_png"].to_list())
    truth = dict(insertion_truth(frames).iter_rows())
    ids = frames["insertion_id"].to_list()
    rows: dict[str, list[int]] = {}
    for i, ins in enumerate(ids):
        rows.setdefault(ins, []).append(i)
    correct, correct_vote, conf, read, read_right = [], [], [], [], []
    for ins, idx in rows.items():
        if ins not in truth:
            continue  # an insertion whose item never entered the frame: nothing to decide
        d = decide(probs[idx], classes, [codes[i] for i in idx], known)
        correct.append(d.label == truth[ins])
        correct_vote.append(d.vote_label == truth[ins])
        conf.append(d.confidence)
        read.append(d.source == "barcode")
        if d.source == "barcode":
            read_right.append(d.barcode == truth[ins])
    item = frames["sku"].is_not_null().to_numpy()
    frame_pred = np.array(classes, dtype=object)[probs.argmax(1)] if len(probs) else np.array([])
    frame_ok = frame_pred[item] == frames["sku"].to_numpy()[item]

    def share(xs: list[bool]) -> float | None:
        return float(np.mean(xs)) if xs else None

    return {"n_insertions": len(correct), "n_frames": frames.height, "top1": share(correct),
            "top1_vote": share(correct_vote), "barcode_read_share": share(read),
            "barcode_precision": share(read_right),
            "ece": ece(np.array(conf), np.array(correct, bool)),
            "frame_item_top1": float(frame_ok.mean()) if len(frame_ok) else None}


def evaluate_insertions(session, classes: list[str], imgsz: int, sets: dict[str, pl.DataFrame],
                        known: set[str] | None = None, wb: str = "none") -> dict:
    """Per set metrics, slices `ins:<set>` (n = insertions, top1 fused) for the gate's slice rule,
    and the pooled / worst-store metrics: `insertion_top1`, `insertion_top1_vote`,
    `insertion_top1_min_set`."""
    per_set = {name: evaluate_insertion_set(session, classes, imgsz, frames, known, wb)
               for name, frames in sorted(sets.items())}
    slices = {f"{INSERTION_SLICE_PREFIX}{k}": {"n": v["n_insertions"], "top1": v["top1"]}
              for k, v in per_set.items()}
    metrics: dict[str, float | None] = {}
    scored = {k: v for k, v in per_set.items() if v["top1"] is not None}
    if scored:
        n = sum(v["n_insertions"] for v in scored.values())
        metrics["insertion_top1"] = sum(v["top1"] * v["n_insertions"] for v in scored.values()) / n
        metrics["insertion_top1_vote"] = sum(v["top1_vote"] * v["n_insertions"]
                                             for v in scored.values()) / n
        metrics["insertion_top1_min_set"] = min(v["top1"] for v in scored.values())
    return {"sets": per_set, "slices": slices, "metrics": metrics}
