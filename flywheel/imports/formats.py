"""Readers for labelled image datasets; each yields `Item`s (one image, its class and box as the
dataset spells them) and the classes the dataset declares. No validation beyond parsing here:
flywheel.imports.dataset checks images, classes, boxes and leaks on the items.

- imagefolder: <root>/<class>/<image>                  (torchvision ImageFolder)
- yolo-classify: <root>/{train,val,test}/<class>/<image> (ultralytics classify layout)
- yolo-detect: data.yaml + images/<subset>/<image> + labels/<subset>/<image stem>.txt
- coco: one COCO JSON (images, annotations with bbox [x, y, w, h], categories)
- labelstudio: a Label Studio JSON export (choices or rectanglelabels results)
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import parse_qs, unquote, urlparse

IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff"}
FORMATS = ("imagefolder", "yolo-classify", "yolo-detect", "coco", "labelstudio")
YOLO_SUBSETS = ("train", "val", "valid", "test")


class FormatError(ValueError):
    """The dataset cannot be parsed as the given format at all."""


@dataclass
class Item:
    source: str  # where the image came from, as the report names it (path relative to the root)
    path: Path | None  # the image file (None when the dataset points at nothing we can find)
    label: str | None  # class name as the dataset spells it; None = no object (background)
    box: tuple[float, float, float, float] | None = None  # x1, y1, x2, y2 in pixels
    box_norm: bool = False  # box is in 0..1 image fractions (YOLO, Label Studio %/100)
    subset: str | None = None  # the dataset's own split folder, when it has one
    group: str | None = None  # folder of the image relative to the root (an optional split group)
    problem: str | None = None  # a reason the reader already knows this item cannot be used


@dataclass
class RawDataset:
    fmt: str
    task: str  # "classify" | "detect"
    items: list[Item]
    classes: list[str]  # classes the dataset declares (folders, yaml names, categories)
    skipped: list[tuple[str, str]]  # (file, why) for files that are not images of the dataset


def detect_format(path: Path) -> str:
    if path.is_file():
        if path.suffix.lower() in (".yaml", ".yml"):
            return "yolo-detect"
        doc = json.loads(path.read_text())
        return "coco" if isinstance(doc, dict) and "images" in doc else "labelstudio"
    if (path / "data.yaml").is_file():
        return "yolo-detect"
    if any((path / s).is_dir() and any(p.is_dir() for p in (path / s).iterdir()) for s in YOLO_SUBSETS):
        return "yolo-classify"
    return "imagefolder"


def read_dataset(path: str | Path, fmt: str | None = None, images_dir: str | Path | None = None,
                 subset: str | None = None) -> RawDataset:
    path = Path(path)
    if not path.exists():
        raise FormatError(f"{path}: no such file or folder")
    fmt = fmt or detect_format(path)
    if fmt == "imagefolder":
        ds = read_imagefolder(path)
    elif fmt == "yolo-classify":
        ds = read_yolo_classify(path)
    elif fmt == "yolo-detect":
        ds = read_yolo_detect(path if path.is_file() else path / "data.yaml")
    elif fmt == "coco":
        ds = read_coco(path, Path(images_dir) if images_dir else None)
    elif fmt == "labelstudio":
        ds = read_label_studio(path, Path(images_dir) if images_dir else None)
    else:
        raise FormatError(f"unknown format {fmt!r}; one of {FORMATS}")
    if subset is not None:
        subsets = sorted({i.subset for i in ds.items if i.subset})
        if subset not in subsets:
            raise FormatError(f"{path}: no subset {subset!r} (has {subsets})")
        ds.items = [i for i in ds.items if i.subset == subset]
    return ds


def _class_folders(root: Path, base: Path, subset: str | None, items: list[Item],
                   skipped: list[tuple[str, str]]) -> list[str]:
    classes = []
    for cls_dir in sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith(".")):
        classes.append(cls_dir.name)
        for f in sorted(cls_dir.rglob("*")):
            if not f.is_file() or f.name.startswith("."):
                continue
            rel = f.relative_to(base).as_posix()
            if f.suffix.lower() not in IMAGE_SUFFIXES:
                skipped.append((rel, f"not an image file ({f.suffix or 'no suffix'})"))
                continue
            items.append(Item(rel, f, cls_dir.name, subset=subset,
                              group=f.parent.relative_to(base).as_posix()))
    for f in sorted(p for p in root.iterdir() if p.is_file() and not p.name.startswith(".")):
        skipped.append((f.relative_to(base).as_posix(), "not inside a class folder"))
    return classes


def read_imagefolder(root: Path) -> RawDataset:
    items: list[Item] = []
    skipped: list[tuple[str, str]] = []
    classes = _class_folders(root, root, None, items, skipped)
    if not classes:
        raise FormatError(f"{root}: no class folders (ImageFolder is <root>/<class>/<image>)")
    return RawDataset("imagefolder", "classify", items, classes, skipped)


def read_yolo_classify(root: Path) -> RawDataset:
    items: list[Item] = []
    skipped: list[tuple[str, str]] = []
    classes: set[str] = set()
    for sub in YOLO_SUBSETS:
        if (root / sub).is_dir():
            classes.update(_class_folders(root / sub, root, sub, items, skipped))
    if not classes:
        raise FormatError(f"{root}: no <subset>/<class>/ folders (subsets {YOLO_SUBSETS})")
    return RawDataset("yolo-classify", "classify", items, sorted(classes), skipped)


def read_yolo_detect(yaml_path: Path) -> RawDataset:
    import yaml

    try:
        cfg = yaml.safe_load(yaml_path.read_text()) or {}
    except yaml.YAMLError as e:
        raise FormatError(f"{yaml_path}: not valid YAML ({e})") from None
    names = cfg.get("names")
    if isinstance(names, dict):
        names = [names[k] for k in sorted(names, key=int)]
    if not isinstance(names, list) or not names:
        raise FormatError(f"{yaml_path}: no 'names' (the class list)")
    names = [str(n) for n in names]
    base = Path(cfg.get("path") or yaml_path.parent)
    if not base.is_absolute():
        base = (yaml_path.parent / base).resolve()
    items: list[Item] = []
    skipped: list[tuple[str, str]] = []
    for sub in ("train", "val", "test"):
        entry = cfg.get(sub)
        if not entry:
            continue
        for folder in [entry] if isinstance(entry, str) else entry:
            img_dir = base / folder
            if not img_dir.is_dir():
                raise FormatError(f"{yaml_path}: {sub} folder {img_dir} does not exist")
            for f in sorted(img_dir.rglob("*")):
                if f.is_file() and not f.name.startswith("."):
                    rel = f.relative_to(base).as_posix()
                    if f.suffix.lower() not in IMAGE_SUFFIXES:
                        skipped.append((rel, f"not an image file ({f.suffix or 'no suffix'})"))
                        continue
                    items.extend(_yolo_boxes(f, rel, names, sub, base))
    return RawDataset("yolo-detect", "detect", items, names, skipped)


def _yolo_label_path(image: Path) -> Path:
    parts = list(image.parts)
    idx = len(parts) - 1 - parts[::-1].index("images")  # the last 'images' folder, as ultralytics
    parts[idx] = "labels"
    return Path(*parts).with_suffix(".txt")


def _yolo_boxes(image: Path, rel: str, names: list[str], subset: str, base: Path) -> list[Item]:
    group = image.parent.relative_to(base).as_posix()
    try:
        label_file = _yolo_label_path(image)
    except ValueError:
        return [Item(rel, image, None, subset=subset, group=group,
                     problem="image is not under an 'images' folder (no labels folder to pair with)")]
    lines = [ln.split() for ln in label_file.read_text().splitlines() if ln.strip()] \
        if label_file.is_file() else []
    if not lines:
        return [Item(rel, image, None, subset=subset, group=group)]  # background image
    out = []
    for n, parts in enumerate(lines, 1):
        where = f"{label_file.relative_to(base).as_posix()}:{n}"
        try:
            cls, cx, cy, w, h = int(parts[0]), *map(float, parts[1:5])
            if len(parts) != 5:
                raise ValueError
        except (ValueError, IndexError):
            out.append(Item(rel, image, None, subset=subset, group=group,
                            problem=f"{where}: not 'class cx cy w h' ({' '.join(parts)!r})"))
            continue
        if not 0 <= cls < len(names):
            out.append(Item(rel, image, str(cls), subset=subset, group=group,
                            problem=f"{where}: class index {cls} not in names (0..{len(names) - 1})"))
            continue
        out.append(Item(rel, image, names[cls], (cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2),
                        box_norm=True, subset=subset, group=group))
    return out


def _resolve(root: Path, ref: str) -> Path | None:
    """An image reference (relative path, absolute path, URL, Label Studio upload or local-files
    path) to an existing file under `root`; Label Studio prefixes uploads with '<8 hex>-'."""
    parsed = urlparse(ref)
    if parsed.query and "d" in parse_qs(parsed.query):  # /data/local-files/?d=<path>
        ref = parse_qs(parsed.query)["d"][0]
    else:
        ref = unquote(parsed.path or ref)
    candidates = [root / ref.lstrip("/"), root / Path(ref).name]
    name = Path(ref).name
    if len(name) > 9 and name[8] == "-" and all(c in "0123456789abcdef" for c in name[:8]):
        candidates.append(root / name[9:])
    return next((c for c in candidates if c.is_file()), None)


def read_coco(json_path: Path, images_dir: Path | None) -> RawDataset:
    try:
        doc = json.loads(json_path.read_text())
        cats = {int(c["id"]): str(c["name"]) for c in doc["categories"]}
        images = {int(im["id"]): im for im in doc["images"]}
        anns = doc.get("annotations", [])
    except (ValueError, KeyError, TypeError) as e:
        raise FormatError(f"{json_path}: not a COCO file ({type(e).__name__}: {e})") from None
    root = images_dir or (json_path.parent / "images" if (json_path.parent / "images").is_dir()
                          else json_path.parent)
    by_image: dict[int, list[dict]] = {i: [] for i in images}
    items: list[Item] = []
    for n, a in enumerate(anns):
        if a.get("image_id") not in by_image:
            items.append(Item(f"annotations[{n}]", None, None, problem=f"annotation {a.get('id')} "
                              f"points at unknown image {a.get('image_id')}"))
        else:
            by_image[a["image_id"]].append(a)
    for image_id, im in sorted(images.items()):
        ref = str(im.get("file_name", ""))
        path = _resolve(root, ref)
        missing = None if path else f"image file {ref!r} not found under {root}"
        if not by_image[image_id]:
            items.append(Item(ref, path, None, problem=missing))
        for a in by_image[image_id]:
            label = cats.get(int(a.get("category_id", -1)))
            problem = missing or (None if label else f"unknown category_id {a.get('category_id')}")
            box = None
            if a.get("bbox"):
                x, y, w, h = (float(v) for v in a["bbox"])
                box = (x, y, x + w, y + h)
            items.append(Item(ref, path, label, box, problem=problem))
    task = "detect" if any(i.box for i in items) else "classify"
    return RawDataset("coco", task, items, sorted(set(cats.values())), [])


def read_label_studio(json_path: Path, images_dir: Path | None) -> RawDataset:
    try:
        tasks = json.loads(json_path.read_text())
    except ValueError as e:
        raise FormatError(f"{json_path}: not JSON ({e})") from None
    if not isinstance(tasks, list):
        raise FormatError(f"{json_path}: a Label Studio JSON export is a list of tasks")
    root = images_dir or json_path.parent
    items: list[Item] = []
    task_kind = "classify"
    for t in tasks:
        ref = str((t.get("data") or {}).get("image", ""))
        source = f"task {t.get('id')} ({Path(unquote(ref)).name})"
        path = _resolve(root, ref) if ref else None
        missing = None if path else f"image {ref!r} not found under {root}"
        done = [a for a in t.get("annotations", []) if not a.get("was_cancelled")]
        if not done:
            items.append(Item(source, path, None, problem="task has no (non-cancelled) annotation"))
            continue
        results = done[-1].get("result", [])  # the latest annotation is the one that counts
        boxes = [r for r in results if r.get("type") == "rectanglelabels"]
        choices = [r for r in results if r.get("type") == "choices"]
        if boxes:
            task_kind = "detect"
            for r in boxes:
                v = r["value"]
                x, y, w, h = (float(v[k]) / 100.0 for k in ("x", "y", "width", "height"))
                items.append(Item(source, path, (v.get("rectanglelabels") or [None])[0],
                                  (x, y, x + w, y + h), box_norm=True, problem=missing))
        elif choices:
            labels = choices[0]["value"].get("choices", [])
            problem = missing or (None if len(labels) == 1 else f"{len(labels)} choices (need one)")
            items.append(Item(source, path, labels[0] if labels else None, problem=problem))
        else:
            items.append(Item(source, path, None, problem=missing))  # annotated as nothing: empty
    return RawDataset("labelstudio", task_kind, items, [], [])
