"""Content-addressed dataset versions: `datasets/<version>/manifest.json` + Parquet shards.

The version id is a hash of the member frame ids, their labels, the split rule and the task, so the
same inputs always give the same id and any change of membership, label or split gives a new one.
The train/val split is by group (session or device): all frames of one cart session sit on one side,
so near-duplicate neighbouring frames never leak from train into validation.

Everything a trainer needs is checked here, before any training starts: an empty dataset, a single
class, labels outside the catalog, a split side with no data, frames of the frozen test sets, and
(for a stored version) shards that are missing or do not match their recorded sha256.
"""

from __future__ import annotations

import hashlib
import io
import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

import polars as pl

from edge_agent.contract.layout import dataset_prefix
from edge_agent.lake import Lake, ObjectNotFound
from flywheel.learner.config import EMPTY_CLASS, DatasetSpec, SplitRule
from flywheel.learner.errors import DatasetError

MANIFEST_SCHEMA = "flywheel.dataset/v1"
MIN_CLASSES = 2


@dataclass(frozen=True)
class DatasetVersion:
    version: str  # "ds-" + 24 hex chars of the content hash
    manifest: dict  # the stored manifest (members summary, splits, class balance, shards)

    @property
    def classes(self) -> list[str]:
        return list(self.manifest["classes"])

    @property
    def prefix(self) -> str:
        return dataset_prefix(self.version)


def canonical_json(obj: object) -> bytes:
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=True).encode()


# -- labelling and splitting -------------------------------------------------------------------------

def label_frames(frames: pl.DataFrame, spec: DatasetSpec) -> tuple[pl.DataFrame, dict[str, int]]:
    """Add a `label` column (SKU, or EMPTY_CLASS) and drop frames the task cannot use.

    Returns the members and the rejects by reason (counts only: they go into metadata)."""
    rejects: dict[str, int] = {}
    is_empty = pl.col("is_empty").fill_null(False)
    labelled = frames.with_columns(
        pl.when(is_empty).then(pl.lit(EMPTY_CLASS)).otherwise(pl.col("sku")).alias("label"))
    no_label = labelled.filter(pl.col("label").is_null())
    if no_label.height:
        rejects["no_label"] = no_label.height  # an item in view but nobody said which
    labelled = labelled.filter(pl.col("label").is_not_null())
    if spec.task == "classify" and not spec.include_empty:
        n = labelled.filter(pl.col("label") == EMPTY_CLASS).height
        if n:
            rejects["empty_excluded"] = n
        labelled = labelled.filter(pl.col("label") != EMPTY_CLASS)
    if spec.task == "classify" and "objects" in labelled.columns:
        multi = labelled.filter(pl.col("objects").is_not_null())
        if multi.height:  # one class per frame cannot describe several items: detection data only
            rejects["classify_multi_object"] = multi.height
            labelled = labelled.filter(pl.col("objects").is_null())
    if spec.task == "detect":
        no_box = labelled.filter((pl.col("label") != EMPTY_CLASS) & pl.col("item_box").is_null())
        if no_box.height:
            rejects["detect_no_box"] = no_box.height
        labelled = labelled.filter((pl.col("label") == EMPTY_CLASS) | pl.col("item_box").is_not_null())
    dup = labelled.height - labelled["frame_id"].n_unique()
    if dup:
        rejects["duplicate_frame_id"] = dup
        labelled = labelled.unique(subset="frame_id", keep="first", maintain_order=True)
    return labelled.sort("frame_id"), rejects


def _unit_hash(salt: str, group: str) -> float:
    h = hashlib.sha256(f"{salt}|{group}".encode()).hexdigest()
    return int(h[:15], 16) / float(16**15)


def assign_splits(groups: Iterable[str], rule: SplitRule,
                  classes_of: Mapping[str, Iterable[str]] | None = None) -> dict[str, str]:
    """group -> 'train' | 'val'; always whole groups, never single frames.

    1. A group goes to val when its salted hash falls below `val_fraction`: its side depends only on
       itself, so groups keep their side as the data grows.
    2. With `classes_of` (group -> labels in it) and `rule.cover_classes`, deterministic fixes on
       top: a group stays in train when moving it would leave one of its classes with no training
       frames (a class the model never sees is worse than one it is not measured on); then,
       greedily, the train group that brings the most still-missing classes into val moves there,
       as long as its classes keep training frames; then val groups whose classes all stay covered
       go back to train, highest hash first, while val holds more than its share of groups. Groups
       near a rare class may change side as data grows; a group never straddles within a version.
    3. With two or more groups neither side stays empty: the lowest hashes go to val.
    """
    groups = sorted(set(groups))
    u = {g: _unit_hash(rule.salt, g) for g in groups}
    if classes_of is not None and rule.cover_classes:
        out = _cover_classes(groups, u, rule.val_fraction, {g: set(classes_of[g]) for g in groups})
    else:
        out = {g: ("val" if u[g] < rule.val_fraction else "train") for g in groups}
    n_val = sum(v == "val" for v in out.values())
    if len(groups) >= 2 and (n_val == 0 or n_val == len(groups)):
        k = min(len(groups) - 1, max(1, round(rule.val_fraction * len(groups))))
        ranked = sorted(groups, key=lambda g: u[g])
        out = {g: ("val" if i < k else "train") for i, g in enumerate(ranked)}
    return out


def _cover_classes(groups: list[str], u: dict[str, float], val_fraction: float,
                   classes_of: dict[str, set[str]]) -> dict[str, str]:
    """Rule 2 of assign_splits: hash picks that keep every class in train, then a greedy cover,
    then redundant val groups back to train while val holds more than its share of groups."""
    out = dict.fromkeys(groups, "train")
    by_hash = sorted(groups, key=lambda g: u[g])
    groups_of: dict[str, list[str]] = {}
    for g in by_hash:
        for c in classes_of[g]:
            groups_of.setdefault(c, []).append(g)

    def keeps(g: str, side: str) -> bool:  # every class of g still has a group on `side` without g
        return all(any(o != g and out[o] == side for o in groups_of[c]) for c in classes_of[g])

    for g in by_hash:
        if u[g] < val_fraction and keeps(g, "train"):
            out[g] = "val"
    while True:
        lacking = {c for c, gs in groups_of.items() if all(out[g] == "train" for g in gs)}
        movable = [g for g in by_hash if out[g] == "train" and classes_of[g] & lacking and keeps(g, "train")]
        if not movable:
            break
        # the most newly covered classes; ties: the lowest hash (nearest the val threshold)
        out[max(movable, key=lambda g: len(classes_of[g] & lacking))] = "val"
    # covering pulls extra groups into val: hand back, highest hash first, the ones whose classes
    # all stay covered, until val is back at its share of groups
    n_val = sum(side == "val" for side in out.values())
    for g in reversed(by_hash):
        if n_val <= val_fraction * len(groups):
            break
        if out[g] == "val" and keeps(g, "val"):
            out[g] = "train"
            n_val -= 1
    return out


def version_id(members: pl.DataFrame, spec: DatasetSpec) -> str:
    """Hash of (frame_id, label, box) of every member, the split rule and the task. Classify hashes
    the box too: the two-stage model trains its detector and crops on it, so a box-only correction
    is a new dataset version."""
    h = hashlib.sha256()
    h.update(canonical_json({"schema": MANIFEST_SCHEMA, "task": spec.task,
                             "include_empty": spec.include_empty, "split": spec.split.as_dict()}))
    boxes = members["item_box"].to_list()
    objects = members["objects"].to_list() if spec.task == "detect" and "objects" in members.columns \
        else [None] * members.height
    for fid, label, box, objs in zip(members["frame_id"], members["label"], boxes, objects, strict=True):
        h.update(canonical_json([fid, label, box] if objs is None else [fid, label, box, objs]))
    return "ds-" + h.hexdigest()[:24]


# -- validation ----------------------------------------------------------------------------------

def validate_members(members: pl.DataFrame, catalog: set[str] | None,
                     frozen_frame_ids: set[str] | None = None) -> None:
    """Raise DatasetError for data no training should start on; the message carries the numbers."""
    if members.height == 0:
        raise DatasetError("dataset is empty: 0 labelled frames (nothing to train on)")
    labels = members["label"].unique().sort().to_list()
    if len(labels) < MIN_CLASSES:
        raise DatasetError(f"dataset has a single class {labels} in {members.height} frames; "
                           f"training needs at least {MIN_CLASSES} classes")
    if catalog is not None:
        unknown = sorted(set(labels) - set(catalog) - {EMPTY_CLASS})
        if unknown:
            n = members.filter(pl.col("label").is_in(unknown)).height
            raise DatasetError(f"{len(unknown)} label(s) not in the catalog ({n} frames): "
                               f"{unknown[:10]}{' ...' if len(unknown) > 10 else ''}")
    if frozen_frame_ids:
        leaked = members.filter(pl.col("frame_id").is_in(list(frozen_frame_ids)))
        if leaked.height:
            raise DatasetError(f"{leaked.height} frame(s) belong to a frozen standard test set "
                               f"(e.g. {leaked['frame_id'][0]}); training must never read them")
    if "split" in members.columns:
        for side in ("train", "val"):
            if members.filter(pl.col("split") == side).height == 0:
                raise DatasetError(f"the {side} split is empty ({members.height} frames in "
                                   f"{members['session_id'].n_unique()} sessions); need more groups")


def class_balance(members: pl.DataFrame, by: str) -> dict:
    """Frames per class and side; `classes_in_one_group` cannot be on both sides without leakage."""
    counts = (members.group_by("label", "split").len().sort("label", "split")
              .pivot(on="split", index="label", values="len").fill_null(0))
    for side in ("train", "val"):
        if side not in counts.columns:
            counts = counts.with_columns(pl.lit(0, dtype=pl.UInt32).alias(side))
    rows = {r["label"]: {"train": int(r["train"]), "val": int(r["val"])}
            for r in counts.iter_rows(named=True)}
    train_counts = [v["train"] for v in rows.values() if v["train"] > 0]
    return {
        "per_class": rows,
        "imbalance_ratio": (max(train_counts) / min(train_counts)) if train_counts else None,
        "classes_missing_in_val": sorted(k for k, v in rows.items() if v["val"] == 0),
        "classes_missing_in_train": sorted(k for k, v in rows.items() if v["train"] == 0),
        "classes_in_one_group": sorted(members.group_by("label").agg(pl.col(by).n_unique().alias("n"))
                                       .filter(pl.col("n") == 1)["label"].to_list()),
    }


# -- building and storing --------------------------------------------------------------------------

def build_members(frames: pl.DataFrame, spec: DatasetSpec, catalog: set[str] | None,
                  frozen_frame_ids: set[str] | None = None) -> tuple[pl.DataFrame, dict[str, int]]:
    """Label, validate and split frames. Raises DatasetError before anything is written."""
    members, rejects = label_frames(frames, spec)
    validate_members(members, catalog, frozen_frame_ids)
    by = spec.split.by
    labels_of = members.group_by(by).agg(pl.col("label").unique())
    sides = assign_splits(members[by].to_list(), spec.split,
                          dict(zip(labels_of[by].to_list(), labels_of["label"].to_list(), strict=True)))
    members = members.with_columns(
        pl.col(spec.split.by).replace_strict(sides, return_dtype=pl.String).alias("split"))
    validate_members(members, catalog)
    return members, rejects


def write_dataset_version(lake: Lake, frames: pl.DataFrame, spec: DatasetSpec,
                          catalog: set[str] | None, sources: list[str],
                          frozen_frame_ids: set[str] | None = None) -> tuple[DatasetVersion, bool]:
    """Build and store a version; returns (version, created). An existing version is not rewritten:
    same id means same content, so a re-run is a no-op."""
    members, rejects = build_members(frames, spec, catalog, frozen_frame_ids)
    version = version_id(members, spec)
    prefix = dataset_prefix(version)
    manifest_key = f"{prefix}/manifest.json"
    if lake.exists(manifest_key):
        return load_dataset_version(lake, version), False
    shards = []
    for i, start in enumerate(range(0, members.height, spec.shard_rows)):
        part = members.slice(start, spec.shard_rows)
        buf = io.BytesIO()
        part.write_parquet(buf, compression="zstd")
        data = buf.getvalue()
        key = f"{prefix}/data/part-{i:05d}.parquet"
        lake.put(key, data)
        shards.append({"key": key, "rows": part.height, "bytes": len(data),
                       "sha256": hashlib.sha256(data).hexdigest()})
    balance = class_balance(members, spec.split.by)
    manifest = {
        "schema": MANIFEST_SCHEMA,
        "version": version,
        "spec": spec.as_dict(),
        "sources": sorted(sources),
        "classes": member_classes(members),
        "counts": {"members": members.height,
                   "train": members.filter(pl.col("split") == "train").height,
                   "val": members.filter(pl.col("split") == "val").height,
                   "groups": members[spec.split.by].n_unique(),
                   "rejects": rejects},
        "class_balance": balance,
        "shards": shards,
    }
    # the manifest goes last: its presence means every shard is complete
    lake.put(manifest_key, json.dumps(manifest, indent=1, sort_keys=True).encode())
    return DatasetVersion(version, manifest), True


def member_classes(members: pl.DataFrame) -> list[str]:
    """Every class the members show: their labels and, in multi-object frames, each object's."""
    classes = set(members["label"].unique().to_list())
    if "objects" in members.columns:
        for objs in members["objects"].drop_nulls().to_list():
            classes.update(str(o[0]) for o in json.loads(objs))
    return sorted(classes)


def load_dataset_version(lake: Lake, version: str) -> DatasetVersion:
    try:
        manifest = json.loads(lake.get(f"{dataset_prefix(version)}/manifest.json"))
    except ObjectNotFound:
        raise DatasetError(f"dataset version {version} has no manifest in {lake.uri}") from None
    return DatasetVersion(version, manifest)


def read_members(lake: Lake, ds: DatasetVersion, catalog: set[str] | None = None,
                 with_images: bool = True) -> pl.DataFrame:
    """Read and verify every shard (presence and sha256), then re-validate the members."""
    parts = []
    for shard in ds.manifest["shards"]:
        try:
            data = lake.get(shard["key"])
        except ObjectNotFound:
            raise DatasetError(f"dataset version {ds.version}: file {shard['key']} is missing "
                               f"from {lake.uri} ({len(ds.manifest['shards'])} shard(s) expected)"
                               ) from None
        digest = hashlib.sha256(data).hexdigest()
        if digest != shard["sha256"]:
            raise DatasetError(f"dataset version {ds.version}: file {shard['key']} is corrupt "
                               f"(sha256 {digest[:12]} != recorded {shard['sha256'][:12]})")
        df = pl.read_parquet(io.BytesIO(data))
        parts.append(df if with_images else df.drop("image_png"))
    members = pl.concat(parts) if parts else pl.DataFrame()
    if members.height != ds.manifest["counts"]["members"]:
        raise DatasetError(f"dataset version {ds.version}: {members.height} rows in shards, manifest "
                           f"says {ds.manifest['counts']['members']}")
    validate_members(members, catalog)
    return members


def preflight(lake: Lake, version: str, catalog: set[str] | None) -> DatasetVersion:
    """Cheap checks before any cluster time is spent: the manifest exists, every shard is present
    with its recorded size, there are two or more classes, all inside the catalog, on both sides.
    The training worker still verifies every shard's sha256 when it reads them."""
    ds = load_dataset_version(lake, version)
    for shard in ds.manifest["shards"]:
        try:
            size = lake.head(shard["key"]).size
        except ObjectNotFound:
            raise DatasetError(f"dataset version {version}: file {shard['key']} is missing from "
                               f"{lake.uri}") from None
        if size != shard["bytes"]:
            raise DatasetError(f"dataset version {version}: file {shard['key']} has {size} bytes, "
                               f"manifest says {shard['bytes']}")
    classes = ds.classes
    if len(classes) < MIN_CLASSES:
        raise DatasetError(f"dataset version {version} has {len(classes)} class(es) {classes}")
    if catalog is not None:
        unknown = sorted(set(classes) - set(catalog) - {EMPTY_CLASS})
        if unknown:
            raise DatasetError(f"dataset version {version}: {len(unknown)} label(s) not in the "
                               f"catalog: {unknown[:10]}")
    counts = ds.manifest["counts"]
    if not counts["train"] or not counts["val"]:
        raise DatasetError(f"dataset version {version}: train {counts['train']} / val {counts['val']} "
                           "frames; both splits need data")
    return ds
