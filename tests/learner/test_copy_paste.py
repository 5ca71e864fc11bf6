"""Lab items pasted onto the week's clean store empties for the detector's refresh: the item's
pixels (in the store frame's colour) inside an exact box, the rest of the store frame untouched,
train split only, deterministic per seed, bad shares refused."""

from __future__ import annotations

import numpy as np
import polars as pl
import pytest

from flywheel.learner.config import EMPTY_CLASS
from flywheel.learner.copy_paste import pasted_items
from flywheel.learner.preprocess import decode_png, encode_png

H, W = 240, 320


def _frame(fill: tuple[int, int, int], box: list[float] | None = None,
           item: tuple[int, int, int] = (200, 40, 40)) -> np.ndarray:
    img = np.full((H, W, 3), fill, np.uint8)
    if box:
        x1, y1, x2, y2 = (int(v) for v in box)
        img[y1:y2, x1:x2] = item
    return img


def _members() -> pl.DataFrame:
    rows = []

    def add(fid: str, dist: str, label: str, img: np.ndarray, box: list[float] | None, split: str = "train"):
        rows.append({"frame_id": fid, "session_id": fid, "distribution": dist, "label": label,
                     "sku": None if label == EMPTY_CLASS else label, "is_empty": label == EMPTY_CLASS,
                     "item_box": box, "image_png": encode_png(img), "width": W, "height": H, "split": split})

    lab_box = [100.0, 60.0, 160.0, 140.0]
    add("lab-1", "manual", "4006381333931", _frame((128, 128, 128), lab_box), lab_box)
    add("lab-2", "manual", "5012345678900", _frame((128, 128, 128), lab_box, (40, 200, 40)), lab_box)
    for i in range(3):  # the store's clean empties: a darker, bluish light
        add(f"store-empty-{i}", "production", EMPTY_CLASS, _frame((40, 50, 90)), None)
    add("store-empty-val", "production", EMPTY_CLASS, _frame((40, 50, 90)), None, split="val")
    add("store-item", "production", "4006381333931", _frame((40, 50, 90), [150, 100, 260, 230]),
        [150.0, 100.0, 260.0, 230.0])
    return pl.DataFrame(rows)


def test_a_lab_item_lands_in_a_store_empty_with_an_exact_box() -> None:
    members = _members()
    out = pasted_items(members, 1.0, seed=0)
    assert out.height == 3 and out.columns == members.columns
    assert set(out["split"]) == {"train"} and not out["is_empty"].any()
    assert all("~paste" in f and f.startswith("store-empty-") and "val" not in f for f in out["frame_id"])
    assert len({f.split("~")[0] for f in out["frame_id"]}) == 3  # every train empty once
    empty = decode_png(members.filter(pl.col("frame_id") == "store-empty-0")["image_png"][0])
    for row in out.iter_rows(named=True):
        x1, y1, x2, y2 = (int(v) for v in row["item_box"])
        assert (x2 - x1, y2 - y1) == (60, 80) and 0 <= x1 and x2 <= W and 0 <= y1 and y2 <= H
        img = decode_png(row["image_png"])
        inside = img[y1:y2, x1:x2].reshape(-1, 3).mean(0)
        lab = (200, 40, 40) if row["label"] == "4006381333931" else (40, 200, 40)
        # the lab item in the store's light: the channels scaled by store mean / lab mean
        gain = np.array((40, 50, 90)) / (np.array((128, 128, 128)) * (1 - 60 * 80 / (H * W))
                                         + np.array(lab) * 60 * 80 / (H * W))
        assert np.allclose(inside, np.clip(np.array(lab) * gain, 0, 255), atol=2)
        outside = np.ones((H, W), bool)
        outside[y1:y2, x1:x2] = False
        assert np.array_equal(img[outside], empty[outside])  # the rest of the store frame as it was
        # placed around the week's store item (centre 205, 165), jittered by a quarter of the item
        assert abs((x1 + x2) / 2 - 205) <= 15.5 and abs((y1 + y2) / 2 - 165) <= 20.5


def test_shares_seeds_and_what_is_missing() -> None:
    members = _members()
    twice = pasted_items(members, 2.0, seed=0)
    assert twice.height == 6 and sorted(f.split("~")[0] for f in twice["frame_id"]) == sorted(
        [f"store-empty-{i}" for i in range(3)] * 2)
    capped = pasted_items(members, 2.0, seed=0, limit=4)
    assert capped.height == 4 and len({f.split("~")[0] for f in capped["frame_id"]}) == 3
    a, b, c = (pasted_items(members, 1.0, seed=s) for s in (5, 5, 6))
    assert a.equals(b) and not a.equals(c)
    assert pasted_items(members, 0.0, seed=0).height == 0
    assert pasted_items(members.filter(pl.col("distribution") == "manual"), 1.0, seed=0).height == 0
    assert pasted_items(members.filter(pl.col("distribution") == "production"), 1.0, seed=0).height == 0
    for bad in (float("nan"), -0.5, float("inf")):
        with pytest.raises(ValueError, match="det_paste_items"):
            pasted_items(members, bad, seed=0)
    with pytest.raises(ValueError, match="det_paste_max"):
        pasted_items(members, 1.0, seed=0, limit=-1)
