"""Write a dataset version (or any members table) as the directory layout ultralytics trains on.

Class names never become paths: a class is the folder `class_folder(i)` of its index in the card's
class list ("0000", "0001", ...), which sorts in card order whatever the names are ("T-shirt/top",
"..", quotes), so the class order ultralytics derives from the folders is the card's; train.py
checks the trained model's names against `trained_names` all the same.

classify: <root>/{train,val}/<class index>/<frame_id>.png, frames stretched to imgsz x imgsz with the
          nearest-neighbour rule evaluation and the device apply (see preprocess.py), so ultralytics'
          own resize + centre crop is a no-op and never cuts an off-centre item out of view.
detect:   <root>/images/{train,val}/<frame_id>.png + labels/.../<frame_id>.txt (YOLO boxes from the
          simulator's item_box truth) + data.yaml. Empty frames get empty label files.
"""

from __future__ import annotations

import hashlib
import io
import json
from collections.abc import Callable
from pathlib import Path

import numpy as np
import polars as pl

from flywheel.learner.config import EMPTY_CLASS
from flywheel.learner.preprocess import resize_nearest


def class_folder(i: int) -> str:
    return f"{i:04d}"


def trained_names(task: str, classes: list[str]) -> list[str]:
    """The class names, in index order, ultralytics must report after training on our layout."""
    if task == "classify":
        return [class_folder(i) for i in range(len(classes))]
    return [c for c in classes if c != EMPTY_CLASS]


def _file_name(frame_id: str) -> str:
    """Frame ids are ours (hex digests, "img-<sha>"); any other id is made a safe, unique name."""
    safe = "".join(c if c.isalnum() or c in "-_" else "_" for c in frame_id)
    if safe == frame_id and safe:
        return safe
    return f"{safe[:80]}-{hashlib.sha256(frame_id.encode()).hexdigest()[:12]}"


def materialize_classify(members: pl.DataFrame, classes: list[str], root: Path, imgsz: int,
                         wb: str = "none",
                         image_fn: Callable[[np.ndarray, dict], np.ndarray] | None = None) -> Path:
    """`image_fn(rgb, row)` replaces the whole-frame resize (two_stage.py: the item's crop); its
    row holds frame_id, label, split, image_png, item_box and, when the members have it,
    distribution (the classifier's store light is for lab frames only)."""
    from PIL import Image

    folder = {c: class_folder(i) for i, c in enumerate(classes)}
    for side in ("train", "val"):
        for f in folder.values():  # every class folder on both sides: ultralytics indexes by folder
            (root / side / f).mkdir(parents=True, exist_ok=True)
    cols = ["frame_id", "label", "split", "image_png", *(["item_box"] if image_fn else []),
            *(["distribution"] if image_fn and "distribution" in members.columns else [])]
    for row in members.select(*cols).iter_rows(named=True):
        with Image.open(io.BytesIO(row["image_png"])) as im:
            rgb = np.asarray(im.convert("RGB"))
        small = image_fn(rgb, row) if image_fn else resize_nearest(rgb, imgsz, wb)
        Image.fromarray(small).save(
            root / row["split"] / folder[row["label"]] / f"{_file_name(row['frame_id'])}.png",
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
    cols = ["frame_id", "label", "split", "item_box", "image_png"]
    if "objects" not in members.columns:
        members = members.with_columns(pl.lit(None, dtype=pl.String).alias("objects"))
    for row in members.select(*cols, "objects").iter_rows(named=True):
        dst = root / "images" / row["split"] / f"{_file_name(row['frame_id'])}.png"
        with Image.open(io.BytesIO(row["image_png"])) as im:
            w, h = im.size
            if im.format == "PNG" and im.mode == "RGB":  # as it is: re-encoding only costs time
                dst.write_bytes(row["image_png"])
            else:
                im.convert("RGB").save(dst, compress_level=1)
        if row["objects"] is not None:  # every labelled object of the frame
            objects = [(str(o[0]), o[1:5]) for o in json.loads(row["objects"])]
        elif row["label"] != EMPTY_CLASS and row["item_box"] is not None:
            objects = [(row["label"], row["item_box"])]
        else:
            objects = []
        lines = []
        for cls, box in objects:
            if cls not in index:
                continue  # a class outside the model's (an evaluation set's unknown class)
            x1, y1, x2, y2 = (float(v) for v in box)
            x1, x2 = max(0.0, x1), min(float(w), x2)
            y1, y2 = max(0.0, y1), min(float(h), y2)
            if x2 > x1 and y2 > y1:
                lines.append(f"{index[cls]} {(x1 + x2) / 2 / w:.6f} {(y1 + y2) / 2 / h:.6f} "
                             f"{(x2 - x1) / w:.6f} {(y2 - y1) / h:.6f}")
        (root / "labels" / row["split"] / f"{_file_name(row['frame_id'])}.txt").write_text("\n".join(lines))
    yaml = root / "data.yaml"
    # JSON strings are YAML scalars: quotes, colons, slashes in a class name stay part of the name
    yaml.write_text(
        f"path: {json.dumps(str(root))}\ntrain: images/train\nval: images/val\nnames:\n"
        + "".join(f"  {i}: {json.dumps(n)}\n" for i, n in enumerate(names)))
    return yaml
