"""`flywheel import`: a labelled image dataset into the depot, as the manual collection (training
data; appended, deduplicated by content) or as a frozen standard test set (never rewritten).

Everything is checked before anything is written. Per-image problems (unreadable or truncated
file, a box outside the image, conflicting labels for one image) reject that image with its reason
and the rest imports. Problems of the dataset as a whole import nothing: an unknown or empty class,
a photo that is also in a frozen test set (or, for a test set, in the training data) by exact hash
or near-duplicate, a split that leaves a class without training images.

Frames get content-derived ids ("img-" + sha256 of the file), so importing the same photos again
changes nothing, and a photo cannot enter under two ids.
"""

from __future__ import annotations

import io
import json
import re
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import polars as pl

from edge_agent.lake import Lake
from flywheel.imports.catalog import read_catalog
from flywheel.imports.formats import Item, RawDataset, read_dataset
from flywheel.imports.images import NEAR_DUP_BITS, BadImage, inspect_image, sha256
from flywheel.imports.leaks import find_leaks
from flywheel.imports.mapping import map_classes, read_mapping_file
from flywheel.learner import reference_sets as depot_sets
from flywheel.learner.config import EMPTY_CLASS, SplitRule
from flywheel.learner.datasets import assign_splits
from flywheel.learner.errors import DatasetError
from flywheel.learner.labelled_frames import normalise

SET_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]{0,62}$")  # a lake folder and a Dagster asset name
MAX_SIDE = 1280  # larger photos are downscaled once at import (training works at <= 640 px)
BOX_TOLERANCE_PX = 1.0  # rounding in annotation tools; beyond this a box is outside the image


class DatasetImportError(ValueError):
    """The dataset as a whole cannot be imported; `report` says everything that is wrong."""

    def __init__(self, report: ImportReport) -> None:
        super().__init__(report.summary())
        self.report = report


@dataclass
class ImportReport:
    fmt: str
    task: str
    target: str  # "manual" (the manual collection) or "standard:<name>"
    items: int = 0  # images + annotations read
    frames: int = 0  # frames in this import after checks
    new_frames: int = 0  # frames not already in the target
    duplicates: int = 0  # the same file twice with the same label (kept once)
    class_counts: dict[str, int] = field(default_factory=dict)  # catalog id -> frames
    rejected: list[tuple[str, str]] = field(default_factory=list)  # (source, reason)
    skipped: list[tuple[str, str]] = field(default_factory=list)  # files that are not dataset images
    errors: list[str] = field(default_factory=list)  # dataset-level: nothing was written
    imported: depot_sets.Imported | None = None

    def summary(self, max_lines: int = 20) -> str:
        head = (f"{self.fmt} ({self.task}) -> {self.target}: {self.items} item(s) read, "
                f"{self.frames} frame(s) valid, {self.new_frames} new, {len(self.rejected)} rejected, "
                f"{self.duplicates} duplicate(s), {len(self.skipped)} file(s) skipped")
        lines = [head]
        if self.errors:
            lines.append(f"NOTHING IMPORTED: {len(self.errors)} problem(s)")
            lines += [f"  error: {e}" for e in self.errors]
        for title, rows in (("rejected", self.rejected), ("skipped", self.skipped)):
            lines += [f"  {title}: {s}: {r}" for s, r in rows[:max_lines]]
            if len(rows) > max_lines:
                lines.append(f"  ... {len(rows) - max_lines} more {title}")
        if self.imported is not None:
            lines.append(f"  stored {self.imported.key} ({self.imported.rows} rows, "
                         f"sha256 {self.imported.sha256[:16]})")
        return "\n".join(lines)


@dataclass
class _Image:
    data: bytes
    width: int
    height: int
    scale: float  # stored pixels per source pixel (downscaled photos)


def load_image(path: Path) -> _Image:
    """The bytes to store: the file as it is, unless it needs its EXIF rotation applied or is larger
    than MAX_SIDE, then re-encoded once (PNG stays PNG, anything else becomes JPEG quality 95)."""
    from PIL import Image, ImageOps

    data = path.read_bytes()
    w, h, fmt = inspect_image(data)
    with Image.open(io.BytesIO(data)) as im:
        rotated = im.getexif().get(0x0112, 1) not in (1, None)  # EXIF Orientation
        if not rotated and max(w, h) <= MAX_SIDE and fmt in ("JPEG", "PNG"):
            return _Image(data, w, h, 1.0)
        out = ImageOps.exif_transpose(im).convert("RGB")
    scale = min(1.0, MAX_SIDE / max(out.size))
    if scale < 1.0:
        out = out.resize((round(out.width * scale), round(out.height * scale)), Image.Resampling.BILINEAR)
    buf = io.BytesIO()
    if fmt == "PNG":
        out.save(buf, format="PNG", compress_level=3)
    else:
        out.save(buf, format="JPEG", quality=95)
    return _Image(buf.getvalue(), out.width, out.height, scale)


def _box_pixels(item: Item, img: _Image) -> tuple[list[float] | None, str | None]:
    if item.box is None:
        return None, None
    x1, y1, x2, y2 = item.box
    if item.box_norm:
        x1, x2 = x1 * img.width, x2 * img.width
        y1, y2 = y1 * img.height, y2 * img.height
    else:
        x1, y1, x2, y2 = (v * img.scale for v in (x1, y1, x2, y2))
    t = BOX_TOLERANCE_PX
    if x1 < -t or y1 < -t or x2 > img.width + t or y2 > img.height + t:
        return None, (f"box [{x1:.0f}, {y1:.0f}, {x2:.0f}, {y2:.0f}] lies outside the "
                      f"{img.width}x{img.height} image")
    if x2 - x1 < 1 or y2 - y1 < 1:
        return None, f"box [{x1:.0f}, {y1:.0f}, {x2:.0f}, {y2:.0f}] is empty"
    clip = lambda v, hi: min(max(v, 0.0), float(hi))  # noqa: E731 - within tolerance: clip
    return [clip(x1, img.width), clip(y1, img.height), clip(x2, img.width), clip(y2, img.height)], None


def check_items(raw: RawDataset, report: ImportReport) -> list[dict]:
    """One candidate row per usable image: label (dataset class name), box, bytes, size."""
    by_source: dict[str, list[Item]] = {}
    for it in raw.items:
        by_source.setdefault(it.source, []).append(it)
    rows: list[dict] = []
    for source, items in by_source.items():
        report.items += len(items)
        problems = [it.problem for it in items if it.problem]
        if problems:
            report.rejected.append((source, "; ".join(problems)))
            continue
        objects = [it for it in items if it.label is not None]
        if len(objects) > 1 and raw.task != "detect":
            report.rejected.append((source, f"{len(objects)} labelled objects in one image of a "
                                            "classification dataset: a classification frame shows one "
                                            "item (import the boxes as detection, or crop each object "
                                            "into its own image)"))
            continue
        item = objects[0] if objects else items[0]
        try:
            img = load_image(item.path)  # type: ignore[arg-type]
        except OSError as e:
            report.rejected.append((source, f"cannot read the file ({e.strerror or e})"))
            continue
        except BadImage as e:
            report.rejected.append((source, str(e)))
            continue
        boxes, why = [], None
        for n, obj in enumerate(objects or [item], 1):
            box, why = _box_pixels(obj, img)
            if why is None and raw.task == "detect" and obj.label is not None and box is None:
                why = "labelled object without a box in a detection dataset"
            if why:
                why = f"object {n} of {len(objects)} ({obj.label}): {why}" if len(objects) > 1 else why
                break
            boxes.append(box)
        if why:
            report.rejected.append((source, why))
            continue
        # detection keeps every box; the first object also fills the one-item columns (sku, item_box)
        rows.append({"source": source, "label": item.label, "box": boxes[0], "img": img,
                     "objects": [(o.label, b) for o, b in zip(objects, boxes, strict=True)]
                     if len(objects) > 1 else None,
                     "group": item.group or source, "sha": sha256(img.data)})
    return rows


def _object_labels(rows: list[dict]) -> list[str]:
    """Every labelled object's class name, one entry per object."""
    return [lab for r in rows for lab in ([o[0] for o in r["objects"]] if r["objects"] else [r["label"]])
            if lab is not None]


def _labelling(r: dict) -> str:
    """What an image is labelled as: its class, or its objects' classes in order."""
    return ", ".join(o[0] for o in r["objects"]) if r["objects"] else str(r["cls"])


def _dedupe(rows: list[dict], report: ImportReport) -> list[dict]:
    by_sha: dict[str, list[dict]] = {}
    for r in rows:
        by_sha.setdefault(r["sha"], []).append(r)
    out = []
    for same in by_sha.values():
        labels = {_labelling(r) for r in same}
        if len(labels) > 1:
            for r in same:
                report.rejected.append((r["source"], "the same image is also labelled "
                                        + ", ".join(sorted(str(x) for x in labels - {_labelling(r)}))
                                        + " (" + ", ".join(o["source"] for o in same if o is not r) + ")"))
            continue
        report.duplicates += len(same) - 1
        out.append(same[0])
    return out


def _frames_table(rows: list[dict], name: str, group: str) -> pl.DataFrame:
    recs = []
    for r in rows:
        empty = r["cls"] == EMPTY_CLASS
        fid = "img-" + r["sha"][:24]
        recs.append({
            "frame_id": fid,
            # the split group: each photo alone, or all photos of one folder together
            "session_id": f"{name}:{r['group']}" if group == "folder" else fid,
            "device_id": "import", "store": "manual", "distribution": "manual",
            "sku": None if empty else r["cls"], "is_empty": empty,
            "item_box": None if empty else r["box"], "hand_box": None, "conditions": "{}",
            "objects": json.dumps(r["objects"]) if r["objects"] else None,
            "image_png": r["img"].data,  # PNG or JPEG bytes as imported (readers decode with PIL)
            "width": r["img"].width, "height": r["img"].height,
            "source": f"{name}/{r['source']}",
        })
    schema = {"frame_id": pl.String, "session_id": pl.String, "device_id": pl.String,
              "store": pl.String, "distribution": pl.String, "sku": pl.String, "is_empty": pl.Boolean,
              "item_box": pl.List(pl.Float32), "hand_box": pl.List(pl.Float32),
              "conditions": pl.String, "objects": pl.String, "image_png": pl.Binary, "width": pl.Int32,
              "height": pl.Int32, "source": pl.String}
    df = pl.DataFrame(recs, schema=schema).sort("frame_id")
    # one-item images only: no `objects` column, so their tables stay byte-identical to before
    return df if df["objects"].is_not_null().any() else df.drop("objects")


def parquet_bytes(frames: pl.DataFrame) -> bytes:
    buf = io.BytesIO()
    frames.write_parquet(buf, compression="zstd", statistics=False)  # same rows -> same bytes
    return buf.getvalue()


def _images_of(frames: pl.DataFrame) -> tuple[list[str], list[bytes]]:
    return frames["frame_id"].to_list(), frames["image_png"].to_list()


def _leak_errors(new: pl.DataFrame, others: dict[str, pl.DataFrame], side: str, max_bits: int
                 ) -> list[str]:
    leaks = find_leaks(new["source"].to_list(), new["image_png"].to_list(),
                       {n: _images_of(f) for n, f in others.items()}, max_bits)
    errors = []
    for other in sorted({lk.other.split(":")[0] for lk in leaks}):
        mine = [lk for lk in leaks if lk.other.startswith(other + ":")]
        kinds = dict(sorted(Counter(lk.kind.split(" ")[0] for lk in mine).items()))
        ex = mine[0]
        errors.append(f"{len(mine)} image(s) are also in {side} '{other}' ({kinds}), e.g. "
                      f"{ex.source} = {ex.other} ({ex.kind}); a test image in training inflates "
                      "every score")
    return errors


def _uncovered_classes(frames: pl.DataFrame) -> list[str]:
    """Classes the Learner's own group split would leave without training frames."""
    labelled = frames.with_columns(
        pl.when(pl.col("is_empty")).then(pl.lit(EMPTY_CLASS)).otherwise(pl.col("sku")).alias("label"))
    groups = labelled.group_by("session_id").agg(pl.col("label").unique())
    classes_of = dict(zip(groups["session_id"].to_list(), groups["label"].to_list(), strict=True))
    sides = assign_splits(list(classes_of), SplitRule(), classes_of)
    trained = {c for g, cs in classes_of.items() if sides[g] == "train" for c in cs}
    return sorted(set(labelled["label"].unique().to_list()) - trained)


def import_dataset(lake: Lake, path: str | Path, *, fmt: str | None = None, standard_set: str | None = None,
                   mapping_file: str | Path | None = None, images_dir: str | Path | None = None,
                   subset: str | None = None, group: str = "image",
                   near_dup_bits: int = NEAR_DUP_BITS) -> ImportReport:
    """Check, then store. Raises DatasetImportError (with the whole report) and writes nothing when
    the dataset as a whole is wrong; returns the report (rejected images included) otherwise."""
    if standard_set is not None and not SET_NAME.match(standard_set):
        raise ValueError(f"standard set name {standard_set!r}: use letters, digits, '_' or '-'")
    if group not in ("image", "folder"):
        raise ValueError(f"group must be 'image' or 'folder', not {group!r}")
    raw = read_dataset(path, fmt, images_dir, subset)
    report = ImportReport(raw.fmt, raw.task, f"standard:{standard_set}" if standard_set else "manual",
                          skipped=list(raw.skipped))
    rows = check_items(raw, report)
    try:
        products = read_catalog(lake)
    except DatasetError:
        report.errors.append("the lake has no catalog: run `flywheel catalog import` first")
        raise DatasetImportError(report) from None
    mapping = read_mapping_file(mapping_file) if mapping_file else None
    counts = Counter(_object_labels(rows))
    used = set(counts)
    mapped, unknown = map_classes(used | set(raw.classes), products, mapping)
    for name in sorted(used & set(unknown)):
        images = sum(name in (r["label"], *(o[0] for o in r["objects"] or [])) for r in rows)
        report.errors.append(f"class {name!r} ({images} image(s)): {unknown[name]}")
    for name in raw.classes:
        if not counts.get(name):
            report.errors.append(f"class {name!r} has no usable images")
    for r in rows:
        r["cls"] = EMPTY_CLASS if r["label"] is None else mapped.get(r["label"], r["label"])
        if r["objects"]:
            r["objects"] = [[mapped.get(lab, lab), *box] for lab, box in r["objects"]]
    rows = _dedupe(rows, report)
    if not rows:
        report.errors.append("no usable image")
    if report.errors:
        raise DatasetImportError(report)
    path = Path(path)
    name = standard_set or (path.name if path.is_dir() else path.parent.name)  # provenance prefix
    new = _frames_table(rows, name, group)
    report.frames = new.height
    report.class_counts = dict(sorted(Counter(
        c for r in rows for c in ([o[0] for o in r["objects"]] if r["objects"] else [r["cls"]])).items()))
    if standard_set:
        _import_standard(lake, new, standard_set, report, near_dup_bits)
    else:
        _import_manual(lake, new, report, near_dup_bits, group)
    return report


def _import_manual(lake: Lake, new: pl.DataFrame, report: ImportReport, near_dup_bits: int,
                   group: str) -> None:
    frozen, _ = depot_sets.read_standard_sets(lake) if depot_sets.standard_set_names(lake) else ({}, {})
    report.errors += _leak_errors(new, frozen, "frozen test set", near_dup_bits)
    current = depot_sets.read_current(lake, depot_sets.MANUAL_AREA)
    merged = new
    if current is not None:
        _, old = depot_sets.read_manual_collection(lake)
        report.new_frames = new.filter(~pl.col("frame_id").is_in(old["frame_id"].to_list())).height
        keep = [c for c in old.columns if c in new.columns] + [c for c in ("objects",)
                                                              if c in new.columns and c not in old.columns]
        merged = pl.concat([old, normalise(new).select(keep)],
                           how="diagonal_relaxed").unique("frame_id", keep="first").sort("frame_id")
    else:
        report.new_frames = new.height
    missing = _uncovered_classes(merged)
    if missing:
        report.errors.append(f"the split by {group} leaves {len(missing)} class(es) without training "
                             f"images: {missing[:10]} "
                             "(add images in more groups)")
    if report.errors:
        raise DatasetImportError(report)
    if report.new_frames or current is None:
        report.imported = depot_sets.import_manual_collection(lake, parquet_bytes(merged))
    else:  # everything was already there: nothing to write
        report.imported = depot_sets.Imported("manual_collection", current["key"], current["sha256"],
                                              current["rows"], False)


def _import_standard(lake: Lake, new: pl.DataFrame, name: str, report: ImportReport,
                     near_dup_bits: int) -> None:
    data = parquet_bytes(new)
    current = depot_sets.read_current(lake, depot_sets.standard_area(name))
    if current is not None and current["sha256"] != sha256(data):
        report.errors.append(f"standard set '{name}' is frozen (sha256 {current['sha256'][:16]}, "
                             f"{current['rows']} frames, imported {current['imported_at']}); a frozen "
                             "set is never rewritten: import these images under a new name")
        raise DatasetImportError(report)
    training = {}
    if depot_sets.read_current(lake, depot_sets.MANUAL_AREA) is not None:
        training["manual_collection"] = depot_sets.read_manual_collection(lake)[1]
    report.errors += _leak_errors(new, training, "the training data", near_dup_bits)
    if report.errors:
        raise DatasetImportError(report)
    report.new_frames = 0 if current is not None else new.height
    report.imported = depot_sets.import_standard_set(lake, name, data)
