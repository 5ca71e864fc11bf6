"""Insertion-level sets and the oracle's training frames: whole insertions, own sessions, real
barcodes, byte-deterministic exports."""

from __future__ import annotations

import io

import pyarrow.parquet as pq
import zxingcpp

from flywheel.sim.export import build_production_test_set, build_production_training_set
from flywheel.sim.insertions import build_insertion_test_set, export_insertion_set


def test_insertion_set_keeps_whole_insertions_in_order(world):
    rows = build_insertion_test_set("B", seed=0, n_insertions=5, world=world)
    by_ins: dict[str, list] = {}
    for ins, fr in rows:
        by_ins.setdefault(ins, []).append(fr)
    assert len(by_ins) == 5
    for ins, frames in by_ins.items():
        assert all(ins.startswith(fr.session_id) for fr in frames)
        idx = [fr.index for fr in frames]
        assert idx == list(range(idx[0], idx[0] + len(idx)))  # contiguous: approach..drop
        phases = [fr.truth.phase for fr in frames]
        assert phases[0] == "approach" and phases[-1] == "drop" and "hold" in phases
        skus = {fr.truth.sku for fr in frames if fr.truth.sku is not None}
        assert len(skus) == 1  # one item per insertion
    # at most two insertions per session: many sessions (devices, light) per set
    sessions = {ins.rsplit("-i", 1)[0] for ins in by_ins}
    assert len(sessions) >= 3


def test_insertion_export_is_deterministic_with_extra_columns(world, tmp_path):
    rows = build_insertion_test_set("A", seed=0, n_insertions=2, world=world)
    a, b = io.BytesIO(), io.BytesIO()
    man = export_insertion_set(rows, a)
    export_insertion_set(build_insertion_test_set("A", seed=0, n_insertions=2, world=world), b)
    assert a.getvalue() == b.getvalue()
    t = pq.read_table(io.BytesIO(a.getvalue()))
    assert t.column_names[-3:] == ["insertion_id", "phase", "barcode_in_view"]
    assert man["rows"] == t.num_rows == len(rows) and man["insertions"] == 2


def test_barcodes_in_view_are_readable_in_clean_light(world):
    rows = build_insertion_test_set("manual", seed=0, n_insertions=6, world=world)
    in_view = [fr for _, fr in rows if fr.truth.barcode_in_view]
    assert in_view, "manual insertions turn the item: some barcode must be in view"
    reads = [zxingcpp.read_barcodes(fr.device.image, formats=zxingcpp.BarcodeFormat.EAN13)
             for fr in in_view]
    texts = [(r[0].text if r else None, fr.truth.sku) for r, fr in zip(reads, in_view, strict=True)]
    assert all(t == sku for t, sku in texts if t is not None)  # a read is never another SKU
    assert sum(t is not None for t, _ in texts) >= len(texts) // 2


def test_oracle_training_frames_share_no_session_or_image_with_the_frozen_set(world):
    train = build_production_training_set("C", seed=0, n=24, world=world)
    frozen = build_production_test_set("C", seed=0, n=24, world=world)
    assert {f.session_id for f in train}.isdisjoint({f.session_id for f in frozen})
    assert {f.device.image.tobytes() for f in train}.isdisjoint({f.device.image.tobytes() for f in frozen})
    assert sum(f.truth.is_empty for f in train) == round(24 * 0.15)
