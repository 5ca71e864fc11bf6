from __future__ import annotations

import io
import json

import numpy as np
import pyarrow.parquet as pq
import pytest

from flywheel.sim.catalog import is_valid_ean13
from flywheel.sim.conditions import CONDITION_NAMES
from flywheel.sim.export import (
    DATASET_SCHEMA,
    build_bootstrap_dataset,
    build_production_test_set,
    decode_png,
    export_dataset,
    export_standard_datasets,
    write_catalog,
)
from flywheel.sim.world import StoreWorld

COLUMNS = ["frame_id", "session_id", "device_id", "store", "distribution", "sku", "is_empty",
           "item_box", "hand_box", "conditions", "image_png", "width", "height"]


def test_export_schema_roundtrip_and_manifest(world, tmp_path):
    frames = build_production_test_set("A", seed=3, n=40, world=world)
    man = export_dataset(frames, tmp_path / "a.parquet")
    t = pq.read_table(tmp_path / "a.parquet")
    assert t.column_names == COLUMNS
    assert t.schema.equals(DATASET_SCHEMA, check_metadata=False)
    assert man["rows"] == t.num_rows == 40
    assert man["n_empty"] == 6 and sum(man["class_counts"].values()) == 34
    rows = t.to_pylist()
    assert len({r["frame_id"] for r in rows}) == 40
    for r, f in zip(rows, frames, strict=True):
        assert np.array_equal(decode_png(r["image_png"]), f.device.image)
        assert (r["width"], r["height"]) == (320, 240)
        assert r["is_empty"] == (r["sku"] is None)
        assert r["store"] == "A" and r["distribution"] == "production"
        assert set(r["conditions"]) == set(CONDITION_NAMES)
        if r["sku"]:
            assert is_valid_ean13(r["sku"])
            x1, y1, x2, y2 = r["item_box"]
            assert 0 <= x1 < x2 <= 320 and 0 <= y1 < y2 <= 240
        else:
            assert r["item_box"] is None


def test_export_is_deterministic_by_seed(tmp_path):
    a = export_dataset(build_bootstrap_dataset(5, n_per_sku=2, world=StoreWorld(0)), io.BytesIO())
    b = export_dataset(build_bootstrap_dataset(5, n_per_sku=2, world=StoreWorld(0)),
                       tmp_path / "b.parquet")
    c = export_dataset(build_bootstrap_dataset(6, n_per_sku=2, world=StoreWorld(0)), io.BytesIO())
    assert a["sha256"] == b["sha256"]
    assert a["sha256"] != c["sha256"]
    assert (tmp_path / "b.parquet").stat().st_size == b["bytes"]


def test_catalog_export(world, tmp_path):
    write_catalog(world.catalog, tmp_path / "catalog.parquet")
    rows = pq.read_table(tmp_path / "catalog.parquet").to_pylist()
    assert len(rows) == 30
    assert sum(r["store_specific_to"] is None for r in rows) == 21
    write_catalog(world.catalog, tmp_path / "catalog.json", fmt="json")
    doc = json.loads((tmp_path / "catalog.json").read_text())
    assert [p["ean"] for p in doc["products"]] == [r["ean"] for r in rows]


@pytest.mark.slow
def test_standard_datasets(world, tmp_path):
    man = export_standard_datasets(tmp_path, seed=0, n_per_sku=2, n_test=20, world=world)
    assert set(man) == {"catalog", "catalog_json", "bootstrap", "test_manual",
                        "test_store_A", "test_store_B", "test_store_C"}
    assert (tmp_path / "manifest.json").exists()
    assert man["test_store_B"]["stores"] == {"B": 20}
    assert man["bootstrap"]["rows"] == 21 * 2 + round(0.1 * 42)
