"""Store item boxes at no human cost: lab items pasted onto the week's clean store empties.

A 4-cart week brings ~141 store item boxes (the empty filter's, hand included) and as many clean
store empties; a detector refreshed on them stops boxing store empties but doubts store items
(README, "Copy-paste for the detector's refresh"): store frames without a box teach it that a
store background means no item. Copy-paste augmentation (Ghiasi et al., "Simple Copy-Paste is a Strong
Data Augmentation Method for Instance Segmentation", CVPR 2021) gives it store backgrounds WITH an
exact box: a lab frame's item (its true box) is cut out, given the store frame's colour and
exposure (per-channel mean ratio, what a store camera does to the whole frame) and pasted where
the week's store items were (a filter box's centre, jittered). Only the detector trains on these
frames (a refresh, or a training from scratch on a dataset with store empties); they are never
validation frames, and a lab-only dataset (a bootstrap) has nothing to paste onto.
"""

from __future__ import annotations

import math

import numpy as np
import polars as pl

from flywheel.learner.config import EMPTY_CLASS
from flywheel.learner.preprocess import decode_png, encode_png

STORE = "production"  # merge.py's distribution of a fleet frame


def pasted_items(members: pl.DataFrame, share: float, seed: int, limit: int | None = None) -> pl.DataFrame:
    """`share` x the store empties (train split), at most `limit`, as new training frames, each
    with one lab item pasted in (every empty once before any twice); the same columns as
    `members`."""
    if not (math.isfinite(share) and share >= 0):  # NaN too: a typo must not train silently without
        raise ValueError(f"det_paste_items must be a finite share >= 0, got {share!r}")
    if limit is not None and limit < 0:
        raise ValueError(f"det_paste_max must be >= 0, got {limit!r}")
    if "distribution" not in members.columns:  # no fleet frames: nothing to paste onto
        return members.head(0)
    lab = members.filter((pl.col("label") != EMPTY_CLASS) & pl.col("item_box").is_not_null()
                         & (pl.col("distribution") != STORE))
    empties = members.filter((pl.col("label") == EMPTY_CLASS) & (pl.col("distribution") == STORE)
                             & (pl.col("split") == "train"))
    store_boxes = members.filter((pl.col("label") != EMPTY_CLASS) & pl.col("item_box").is_not_null()
                                 & (pl.col("distribution") == STORE))["item_box"].to_list()
    n = round(share * empties.height) if limit is None else min(limit, round(share * empties.height))
    if n == 0 or lab.is_empty():
        return members.head(0)
    rng = np.random.default_rng(seed)
    lab_rows = lab.to_dicts()
    targets = empties.to_dicts()
    picks = rng.permutation(len(targets))  # every empty once before any twice
    order = [targets[picks[i % len(targets)]] for i in range(n)]
    rows = []
    for k, e in enumerate(order):
        src = lab_rows[int(rng.integers(len(lab_rows)))]
        bg, img = decode_png(e["image_png"]).copy(), decode_png(src["image_png"])
        h, w = bg.shape[:2]
        x1, y1, x2, y2 = (int(round(v)) for v in src["item_box"])
        x1, y1 = max(0, x1), max(0, y1)
        x2, y2 = min(img.shape[1], x2), min(img.shape[0], y2)
        bw, bh = min(x2 - x1, w), min(y2 - y1, h)
        if bw < 4 or bh < 4:
            continue
        gain = bg.reshape(-1, 3).mean(0) / np.maximum(img.reshape(-1, 3).mean(0), 1.0)
        patch = np.clip(img[y1:y1 + bh, x1:x1 + bw].astype(np.float32) * gain, 0, 255).astype(np.uint8)
        if store_boxes:  # where the week's store items were, jittered by a quarter of the item
            a = store_boxes[int(rng.integers(len(store_boxes)))]
            cx, cy = (a[0] + a[2]) / 2, (a[1] + a[3]) / 2
        else:
            cx, cy = (x1 + x2) / 2, (y1 + y2) / 2
        cx += rng.uniform(-0.25, 0.25) * bw
        cy += rng.uniform(-0.25, 0.25) * bh
        tx = int(np.clip(cx - bw / 2, 0, w - bw))
        ty = int(np.clip(cy - bh / 2, 0, h - bh))
        bg[ty:ty + bh, tx:tx + bw] = patch
        new = {"frame_id": f"{e['frame_id']}~paste{k}~{src['frame_id']}", "label": src["label"],
               "sku": src.get("sku"), "is_empty": False, "image_png": encode_png(bg),
               "item_box": [float(tx), float(ty), float(tx + bw), float(ty + bh)]}
        rows.append({**e, **{k: v for k, v in new.items() if k in e}})
    return pl.DataFrame(rows, schema=members.schema) if rows else members.head(0)
