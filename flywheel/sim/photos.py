"""Small real image datasets (no downloads) for tests, benchmarks and trying `flywheel import`:
photos of the simulator's rendered packages (real label art, text and EAN-13 bars) on a cart-basket
background, at random positions, scales and lighting, saved as JPEG with the exact item box; and
writers for every format `flywheel import` reads."""

from __future__ import annotations

import csv
import io
import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, ImageEnhance

SIZE = (160, 120)


@dataclass
class Photo:
    cls: str  # class name as the dataset spells it (the first object's, in a multi-object photo)
    jpeg: bytes
    box: tuple[int, int, int, int]  # x1, y1, x2, y2 pixels
    more: list[tuple[str, tuple[int, int, int, int]]] | None = None  # further objects (class, box)

    @property
    def objects(self) -> list[tuple[str, tuple[int, int, int, int]]]:
        return [(self.cls, self.box), *(self.more or [])]


def products(n: int = 3) -> list:
    from flywheel.sim import default_world

    return list(default_world(0).catalog.core[:n])


def _paste(im: Image.Image, sprite, x: int, y: int) -> None:  # noqa: ANN001 - a packaging Sprite
    im.paste(Image.fromarray(sprite.rgba, "RGBA"), (x, y), Image.fromarray(sprite.rgba[..., 3]))


def take_photos(product, cls: str, n: int, seed: int) -> list[Photo]:
    from flywheel.sim.packaging import render_back, render_front, scale_sprite
    from flywheel.sim.scene import render_basket

    rng = np.random.default_rng(seed)
    faces = [render_front(product), render_back(product)]
    big = Image.fromarray(render_basket(SIZE[0] + 48, SIZE[1] + 36))
    out = []
    for _ in range(n):
        ox, oy = int(rng.integers(0, 49)), int(rng.integers(0, 37))  # the camera moved a little
        bg = big.crop((ox, oy, ox + SIZE[0], oy + SIZE[1]))
        sprite = faces[int(rng.integers(2))]
        sprite = scale_sprite(sprite, float(rng.uniform(0.35, 0.5)))
        w, h = sprite.size
        x, y = int(rng.integers(0, SIZE[0] - w)), int(rng.integers(0, SIZE[1] - h))
        im = bg.copy()
        _paste(im, sprite, x, y)
        im = ImageEnhance.Brightness(im).enhance(float(rng.uniform(0.7, 1.2)))
        buf = io.BytesIO()
        im.save(buf, format="JPEG", quality=int(rng.integers(80, 95)))
        out.append(Photo(cls, buf.getvalue(), (x, y, x + w, y + h)))
    return out


def _overlaps(a: tuple[int, int, int, int], b: tuple[int, int, int, int]) -> bool:
    return not (a[2] <= b[0] or b[2] <= a[0] or a[3] <= b[1] or b[3] <= a[1])


def scenes(classes: list[str], n: int, seed: int = 0, per_photo: tuple[int, int] = (2, 3)) -> list[Photo]:
    """n photos, each with 2-3 different products placed apart (a basket with several items):
    real multi-object detection data, every box exact."""
    from flywheel.sim.packaging import render_back, render_front, scale_sprite
    from flywheel.sim.scene import render_basket

    rng = np.random.default_rng(seed)
    prods = products(len(classes))
    big = Image.fromarray(render_basket(SIZE[0] + 48, SIZE[1] + 36))
    out = []
    while len(out) < n:
        ox, oy = int(rng.integers(0, 49)), int(rng.integers(0, 37))
        im = big.crop((ox, oy, ox + SIZE[0], oy + SIZE[1]))
        k = int(rng.integers(per_photo[0], per_photo[1] + 1))
        placed: list[tuple[str, tuple[int, int, int, int]]] = []
        for i in rng.permutation(len(classes))[:k]:
            p = prods[int(i)]
            sprite = scale_sprite([render_front(p), render_back(p)][int(rng.integers(2))],
                                  float(rng.uniform(0.25, 0.35)))
            w, h = sprite.size
            for _ in range(30):  # a free spot, or leave this product out
                x, y = int(rng.integers(0, SIZE[0] - w)), int(rng.integers(0, SIZE[1] - h))
                if not any(_overlaps((x, y, x + w, y + h), b) for _, b in placed):
                    _paste(im, sprite, x, y)
                    placed.append((classes[int(i)], (x, y, x + w, y + h)))
                    break
        if len(placed) < 2:
            continue
        im = ImageEnhance.Brightness(im).enhance(float(rng.uniform(0.7, 1.2)))
        buf = io.BytesIO()
        im.save(buf, format="JPEG", quality=int(rng.integers(80, 95)))
        out.append(Photo(placed[0][0], buf.getvalue(), placed[0][1], placed[1:]))
    return out


def dataset(classes: list[str], n: int, seed: int = 0) -> list[Photo]:
    """n photos per class; class i shows product i of the core catalog."""
    photos = []
    for i, (cls, p) in enumerate(zip(classes, products(len(classes)), strict=True)):
        photos += take_photos(p, cls, n, seed * 1000 + i)
    return photos


def catalog_csv(path: Path, classes: list[str]) -> Path:
    """A catalog whose ids are `classes`, with the products' real EAN-13s as barcodes."""
    with path.open("w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["id", "name", "brand", "barcode", "weight"])
        for cls, p in zip(classes, products(len(classes)), strict=True):
            w.writerow([cls, p.name, p.brand, p.ean, p.weight_g])
    return path


def write_imagefolder(root: Path, photos: list[Photo], subset: str | None = None) -> Path:
    for i, ph in enumerate(photos):
        d = root / (subset or "") / ph.cls.replace("/", "_")
        d.mkdir(parents=True, exist_ok=True)
        (d / f"{i:04d}.jpg").write_bytes(ph.jpeg)
    return root


def write_yolo_detect(root: Path, photos_by_subset: dict[str, list[Photo]], names: list[str]) -> Path:
    for sub, photos in photos_by_subset.items():
        (root / "images" / sub).mkdir(parents=True, exist_ok=True)
        (root / "labels" / sub).mkdir(parents=True, exist_ok=True)
        for i, ph in enumerate(photos):
            (root / "images" / sub / f"{i:04d}.jpg").write_bytes(ph.jpeg)
            W, H = SIZE
            (root / "labels" / sub / f"{i:04d}.txt").write_text("".join(
                f"{names.index(cls)} {(x1 + x2) / 2 / W:.6f} {(y1 + y2) / 2 / H:.6f} "
                f"{(x2 - x1) / W:.6f} {(y2 - y1) / H:.6f}\n" for cls, (x1, y1, x2, y2) in ph.objects))
    lines = ["path: .", *[f"{s}: images/{s}" for s in photos_by_subset], "names:",
             *[f"  {i}: {json.dumps(n)}" for i, n in enumerate(names)]]  # JSON strings are YAML
    (root / "data.yaml").write_text("\n".join(lines) + "\n")
    return root / "data.yaml"


def write_coco(root: Path, photos: list[Photo]) -> Path:
    (root / "images").mkdir(parents=True, exist_ok=True)
    names = sorted({c for p in photos for c, _ in p.objects})
    doc = {"images": [], "annotations": [],
           "categories": [{"id": i + 1, "name": n} for i, n in enumerate(names)]}
    for i, ph in enumerate(photos):
        (root / "images" / f"p{i:04d}.jpg").write_bytes(ph.jpeg)
        doc["images"].append({"id": i + 1, "file_name": f"p{i:04d}.jpg", "width": SIZE[0], "height": SIZE[1]})
        for cls, (x1, y1, x2, y2) in ph.objects:
            doc["annotations"].append({"id": len(doc["annotations"]) + 1, "image_id": i + 1,
                                       "category_id": names.index(cls) + 1,
                                       "bbox": [x1, y1, x2 - x1, y2 - y1], "area": (x2 - x1) * (y2 - y1),
                                       "iscrowd": 0})
    path = root / "annotations.json"
    path.write_text(json.dumps(doc))
    return path


def write_label_studio(root: Path, photos: list[Photo], boxes: bool) -> Path:
    """A Label Studio JSON export: uploads are named '<8 hex>-<file>' and served from /data/upload."""
    (root / "images").mkdir(parents=True, exist_ok=True)
    tasks = []
    for i, ph in enumerate(photos):
        (root / "images" / f"ls{i:04d}.jpg").write_bytes(ph.jpeg)
        ref = f"/data/upload/1/{i:08x}-ls{i:04d}.jpg"
        if boxes:
            W, H = SIZE
            result = [{"type": "rectanglelabels", "from_name": "label", "to_name": "image",
                       "original_width": W, "original_height": H,
                       "value": {"x": 100 * x1 / W, "y": 100 * y1 / H, "width": 100 * (x2 - x1) / W,
                                 "height": 100 * (y2 - y1) / H, "rotation": 0,
                                 "rectanglelabels": [cls]}} for cls, (x1, y1, x2, y2) in ph.objects]
        else:
            result = [{"type": "choices", "from_name": "choice", "to_name": "image",
                       "value": {"choices": [ph.cls]}}]
        tasks.append({"id": i + 1, "data": {"image": ref},
                      "annotations": [{"id": i + 1, "was_cancelled": False, "result": result}]})
    path = root / "export.json"
    path.write_text(json.dumps(tasks))
    return path
