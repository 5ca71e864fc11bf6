"""Write a dataset version (or any members table) as the directory layout ultralytics trains on.

classify: <root>/{train,val}/<class>/<frame_id>.png, frames stretched to imgsz x imgsz with the
          nearest-neighbour rule evaluation and the device apply (see preprocess.py), so ultralytics'
          own resize + centre crop is a no-op and never cuts an off-centre item out of view.
detect:   <root>/images/{train,val}/<frame_id>.png + labels/.../<frame_id>.txt (YOLO boxes from the
          simulator's item_box truth) + data.yaml. Empty frames get empty label files.
"""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import polars as pl

from flywheel.learner.config import EMPTY_CLASS
from flywheel.learner.preprocess import resize_nearest


def materialize_classify(members: pl.DataFrame, classes: list[str], root: Path, imgsz: int) -> Path:
    from PIL import Image

    for side in ("train", "val"):
        for c in classes:  # every class folder on both sides: ultralytics indexes classes by folder
            (root / side / c).mkdir(parents=True, exist_ok=True)
    for row in members.select("frame_id", "label", "split", "image_png").iter_rows(named=True):
        with Image.open(io.BytesIO(row["image_png"])) as im:
            small = resize_nearest(np.asarray(im.convert("RGB")), imgsz)
        Image.fromarray(small).save(root / row["split"] / row["label"] / f"{row['frame_id']}.png",
                                    compress_level=1)
    return root


def materialize_detect(members: pl.DataFrame, classes: list[str], root: Path) -> Path:
    """YOLO detect layout; class ids index `classes` without EMPTY_CLASS (empty = no boxes)."""
    from PIL import Image

    names = [c for c in classes if c != EMPTY_CLASS]
    index = {c: i for i, c in enumerate(names)}
    for side in ("train", "val"):
        (root / "images" / side).mkdir(parents=True, exist_ok=True)
        (root / "labels" / side).mkdir(parents=True, exist_ok=True)
    for row in members.select("frame_id", "label", "split", "item_box", "image_png").iter_rows(named=True):
        with Image.open(io.BytesIO(row["image_png"])) as im:
            w, h = im.size
            im.convert("RGB").save(root / "images" / row["split"] / f"{row['frame_id']}.png",
                                   compress_level=1)
        lines = []
        if row["label"] != EMPTY_CLASS and row["item_box"] is not None:
            x1, y1, x2, y2 = (float(v) for v in row["item_box"])
            x1, x2 = max(0.0, x1), min(float(w), x2)
            y1, y2 = max(0.0, y1), min(float(h), y2)
            if x2 > x1 and y2 > y1:
                lines.append(f"{index[row['label']]} {(x1 + x2) / 2 / w:.6f} {(y1 + y2) / 2 / h:.6f} "
                             f"{(x2 - x1) / w:.6f} {(y2 - y1) / h:.6f}")
        (root / "labels" / row["split"] / f"{row['frame_id']}.txt").write_text("\n".join(lines))
    yaml = root / "data.yaml"
    yaml.write_text(
        f"path: {root}\ntrain: images/train\nval: images/val\nnames:\n"
        + "".join(f"  {i}: '{n}'\n" for i, n in enumerate(names)))
    return yaml
