"""Datasets from the simulator: the bootstrap "manually collected" set and frozen test sets.

One Parquet file per dataset (schema `DATASET_SCHEMA`, a contract other modules read), written
byte-deterministically: the same seed gives the same file and the same sha256.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import tempfile
from collections import Counter
from collections.abc import Iterable
from pathlib import Path
from typing import BinaryIO

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
from PIL import Image

from flywheel.sim.catalog import Catalog
from flywheel.sim.conditions import CONDITION_NAMES
from flywheel.sim.session import SimFrame
from flywheel.sim.stores import MANUAL
from flywheel.sim.world import StoreWorld, default_world

SCHEMA_VERSION = 1
CONDITIONS_TYPE = pa.struct([pa.field(n, pa.float32(), nullable=False) for n in CONDITION_NAMES])
BOX_TYPE = pa.list_(pa.float32())
DATASET_SCHEMA = pa.schema(
    [
        pa.field("frame_id", pa.string(), nullable=False),
        pa.field("session_id", pa.string(), nullable=False),  # unit of train/val splits
        pa.field("device_id", pa.string(), nullable=False),
        pa.field("store", pa.string(), nullable=False),  # "manual" for manual data
        pa.field("distribution", pa.string(), nullable=False),  # "manual" | "production"
        pa.field("sku", pa.string()),  # EAN-13, null for empty frames
        pa.field("is_empty", pa.bool_(), nullable=False),
        pa.field("item_box", BOX_TYPE),  # [x1, y1, x2, y2] pixels or null
        pa.field("hand_box", BOX_TYPE),
        pa.field("conditions", CONDITIONS_TYPE, nullable=False),  # strength 0..1 per condition
        pa.field("image_png", pa.binary(), nullable=False),
        pa.field("width", pa.int32(), nullable=False),
        pa.field("height", pa.int32(), nullable=False),
    ],
    metadata={b"flywheel.sim.schema_version": str(SCHEMA_VERSION).encode()},
)
CATALOG_SCHEMA = pa.schema(
    [
        pa.field("ean", pa.string(), nullable=False),
        pa.field("name", pa.string(), nullable=False),
        pa.field("brand", pa.string(), nullable=False),
        pa.field("category", pa.string(), nullable=False),
        pa.field("shape", pa.string(), nullable=False),
        pa.field("weight_g", pa.float32(), nullable=False),
        pa.field("store_specific_to", pa.string()),
    ]
)
PNG_COMPRESS_LEVEL = 3  # PNG is lossless at any level; 3 is ~3x faster than 6 for ~5% more bytes


def encode_png(image: np.ndarray) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(image).save(buf, format="PNG", compress_level=PNG_COMPRESS_LEVEL)
    return buf.getvalue()


def decode_png(data: bytes) -> np.ndarray:
    return np.asarray(Image.open(io.BytesIO(data)).convert("RGB"))


def frames_to_table(frames: Iterable[SimFrame]) -> pa.Table:
    cols: dict[str, list] = {f.name: [] for f in DATASET_SCHEMA}
    for fr in frames:
        t = fr.truth
        img = fr.device.image
        cols["frame_id"].append(fr.frame_id)
        cols["session_id"].append(fr.session_id)
        cols["device_id"].append(fr.device_id)
        cols["store"].append(fr.store)
        cols["distribution"].append(fr.distribution)
        cols["sku"].append(t.sku)
        cols["is_empty"].append(t.is_empty)
        cols["item_box"].append(None if t.item_box is None else list(t.item_box))
        cols["hand_box"].append(None if t.hand_box is None else list(t.hand_box))
        cols["conditions"].append({n: float(t.conditions.get(n, 0.0)) for n in CONDITION_NAMES})
        cols["image_png"].append(encode_png(img))
        cols["width"].append(int(img.shape[1]))
        cols["height"].append(int(img.shape[0]))
    return pa.Table.from_pydict(cols, schema=DATASET_SCHEMA)


def _write_bytes(data: bytes, dest: str | os.PathLike | BinaryIO) -> str | None:
    """Atomic write for paths (temp file + os.replace); plain write for file-like objects."""
    if hasattr(dest, "write"):
        dest.write(data)  # type: ignore[union-attr]
        return None
    path = Path(dest)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return str(path)


def _parquet_bytes(table: pa.Table) -> bytes:
    buf = io.BytesIO()
    # fixed writer settings: the bytes (and the sha256) depend on the data only
    pq.write_table(table, buf, compression="zstd", row_group_size=256, write_statistics=True)
    return buf.getvalue()


def export_dataset(frames: Iterable[SimFrame], dest: str | os.PathLike | BinaryIO) -> dict:
    """Write frames as one Parquet dataset; returns a manifest (rows, sha256, class counts)."""
    frames = list(frames)
    table = frames_to_table(frames)
    data = _parquet_bytes(table)
    path = _write_bytes(data, dest)
    skus = Counter(fr.truth.sku for fr in frames if fr.truth.sku is not None)
    return {
        "path": path,
        "rows": table.num_rows,
        "bytes": len(data),
        "sha256": hashlib.sha256(data).hexdigest(),
        "schema_version": SCHEMA_VERSION,
        "class_counts": dict(sorted(skus.items())),
        "n_empty": sum(1 for fr in frames if fr.truth.is_empty),
        "n_sessions": len({fr.session_id for fr in frames}),
        "stores": dict(sorted(Counter(fr.store for fr in frames).items())),
        "distributions": dict(sorted(Counter(fr.distribution for fr in frames).items())),
    }


def catalog_table(catalog: Catalog) -> pa.Table:
    recs = [
        {
            "ean": p.ean,
            "name": p.name,
            "brand": p.brand,
            "category": p.category,
            "shape": p.shape,
            "weight_g": p.weight_g,
            "store_specific_to": p.store_specific_to,
        }
        for p in catalog
    ]
    return pa.Table.from_pylist(recs, schema=CATALOG_SCHEMA)


def write_catalog(catalog: Catalog, dest: str | os.PathLike | BinaryIO, fmt: str = "parquet") -> dict:
    """Catalog as Parquet (`fmt="parquet"`) or JSON (`fmt="json"`, includes palettes)."""
    if fmt == "json":
        data = catalog.to_json().encode()
    else:
        data = _parquet_bytes(catalog_table(catalog))
    path = _write_bytes(data, dest)
    return {"path": path, "rows": len(catalog), "sha256": hashlib.sha256(data).hexdigest()}


# ------------------------------------------------------------------------------- builders
def _session_seed(tag: str, seed: int, j: int) -> int:
    h = hashlib.blake2b(f"{tag}/{seed}".encode(), digest_size=4).digest()
    ss = np.random.SeedSequence([int.from_bytes(h, "little"), seed, j])
    return int(ss.generate_state(1)[0])


def build_bootstrap_dataset(
    seed: int = 0,
    n_per_sku: int = 24,
    empty_fraction: float = 0.1,
    frames_per_insertion: int = 4,
    items_per_session: int = 3,
    world: StoreWorld | None = None,
) -> list[SimFrame]:
    """The "manually collected" labelled set: lab sessions over the core SKUs, `n_per_sku` item
    frames each (taken while the item is held up, several poses per insertion) plus empty frames."""
    world = world or default_world()
    rng = np.random.default_rng(_session_seed("bootstrap-plan", seed, 0))
    core = [p.ean for p in world.catalog.core]
    per_sku = -(-n_per_sku // frames_per_insertion)
    queue = [e for e in core for _ in range(per_sku)]
    queue = [queue[int(i)] for i in rng.permutation(len(queue))]
    chunks = [queue[i : i + items_per_session] for i in range(0, len(queue), items_per_session)]
    got: dict[str, list[SimFrame]] = {e: [] for e in core}
    idle: list[SimFrame] = []
    j = 0
    while chunks:
        for skus in chunks:
            sess = world.session(MANUAL, _session_seed("bootstrap", seed, j), skus=skus)
            j += 1
            run: list[SimFrame] = []  # hold frames of one insertion (contiguous)
            for fr in [*sess, None]:
                if fr is not None and fr.truth.phase == "hold" and fr.truth.sku is not None:
                    run.append(fr)
                    continue
                if run:
                    # spread the picks over the hold so both faces (and the barcode) show
                    pick = np.linspace(0, len(run) - 1, min(frames_per_insertion, len(run)))
                    got[run[0].truth.sku].extend(run[int(i)] for i in sorted(set(pick.round())))
                    run = []
                if fr is not None and fr.truth.phase == "idle":
                    idle.append(fr)
        # top up SKUs whose holds were too short to give enough distinct frames
        short = [e for e in core if len(got[e]) < n_per_sku]
        chunks = [short[i : i + items_per_session] for i in range(0, len(short), items_per_session)]
    out: list[SimFrame] = []
    for e in core:
        out.extend(got[e][:n_per_sku])
    n_empty = int(round(empty_fraction * len(out)))
    if n_empty and idle:
        pick = rng.choice(len(idle), size=min(n_empty, len(idle)), replace=False)
        out.extend(idle[int(i)] for i in sorted(pick))
    return out


def _build_test_set(
    store: str, tag: str, seed: int, n: int, empty_fraction: float, world: StoreWorld,
    per_session: int = 8,
) -> list[SimFrame]:
    rng = np.random.default_rng(_session_seed(tag + "-plan", seed, 0))
    n_empty = int(round(n * empty_fraction))
    n_item = n - n_empty
    items: list[SimFrame] = []
    empties: list[SimFrame] = []
    j = 0
    while len(items) < n_item or len(empties) < n_empty:
        sess = world.session(store, _session_seed(tag, seed, j))
        j += 1
        frs = sess.frames()
        lab = [f for f in frs if f.truth.sku is not None]
        emp = [f for f in frs if f.truth.is_empty and f.truth.phase == "idle"]
        # a handful per session: many sessions (devices, conditions) beat many near-duplicates
        for pool, dst, k in ((lab, items, per_session), (emp, empties, max(1, per_session // 4))):
            if pool:
                pick = rng.choice(len(pool), size=min(k, len(pool)), replace=False)
                dst.extend(pool[int(i)] for i in sorted(pick))
    return items[:n_item] + empties[:n_empty]


def build_production_test_set(
    store: str,
    seed: int = 0,
    n: int = 200,
    empty_fraction: float = 0.15,
    world: StoreWorld | None = None,
) -> list[SimFrame]:
    """Frozen production test set of one store: every phase of insertions (approach, hold, drop),
    store-specific SKUs included, plus idle frames."""
    return _build_test_set(store, f"test-{store}", seed, n, empty_fraction, _store_world(store, world))


def build_production_training_set(
    store: str,
    seed: int = 1,
    n: int = 1100,
    empty_fraction: float = 0.15,
    per_session: int = 8,
    world: StoreWorld | None = None,
) -> list[SimFrame]:
    """Perfectly labelled production frames for the oracle (the ceiling of what labels can buy):
    drawn like a store's test set but from its own session seeds ("oracle-<store>"), so no session
    or frame is shared with the frozen sets whatever `seed` is (callers still check by hash)."""
    return _build_test_set(store, f"oracle-{store}", seed, n, empty_fraction,
                           _store_world(store, world), per_session)


def _store_world(store: str, world: StoreWorld | None) -> StoreWorld:
    world = world or default_world()
    if store not in world.store_names:
        raise KeyError(f"unknown store {store!r}; world has {world.store_names}")
    return world


def build_manual_test_set(
    seed: int = 0, n: int = 200, empty_fraction: float = 0.15, world: StoreWorld | None = None
) -> list[SimFrame]:
    """Held-out test set from the manual distribution (sessions disjoint from the bootstrap)."""
    return _build_test_set(MANUAL, "test-manual", seed, n, empty_fraction, world or default_world())


def export_standard_datasets(
    out_dir: str | os.PathLike,
    seed: int = 0,
    n_per_sku: int = 24,
    n_test: int = 200,
    world: StoreWorld | None = None,
) -> dict[str, dict]:
    """Everything the loop starts from, in one folder: catalog, bootstrap, manual test set and
    one frozen test set per store. Returns manifests by dataset name (also written as JSON)."""
    world = world or default_world()
    out = Path(out_dir)
    manifests = {
        "catalog": write_catalog(world.catalog, out / "catalog.parquet"),
        "catalog_json": write_catalog(world.catalog, out / "catalog.json", fmt="json"),
        "bootstrap": export_dataset(
            build_bootstrap_dataset(seed, n_per_sku, world=world), out / "bootstrap.parquet"
        ),
        "test_manual": export_dataset(
            build_manual_test_set(seed, n_test, world=world), out / "test_manual.parquet"
        ),
    }
    for store in world.store_names:
        manifests[f"test_store_{store}"] = export_dataset(
            build_production_test_set(store, seed, n_test, world=world),
            out / f"test_store_{store}.parquet",
        )
    _write_bytes(json.dumps(manifests, indent=1, sort_keys=True).encode(), out / "manifest.json")
    return manifests
