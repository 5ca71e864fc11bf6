"""Frozen insertion-level test sets: every frame of whole insertions (approach, hold, drop).

The frame-level sets sample a few frames per session; the cart needs one decision per inserted
item, made from all the frames the device saw of it. These sets keep whole insertions together,
with the frames table's columns (`DATASET_SCHEMA`) plus `insertion_id`, `phase` and the ground
truth `barcode_in_view` (reporting only: evaluation reads barcodes from the pixels).
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from pathlib import Path
from typing import BinaryIO

import numpy as np
import pyarrow as pa

from flywheel.sim.export import _parquet_bytes, _session_seed, _write_bytes, frames_to_table
from flywheel.sim.session import SimFrame
from flywheel.sim.world import StoreWorld, default_world

INSERTION_PHASES = ("approach", "hold", "drop")  # the frames of an insertion the device sees
EXTRA_FIELDS = (pa.field("insertion_id", pa.string(), nullable=False),
                pa.field("phase", pa.string(), nullable=False),
                pa.field("barcode_in_view", pa.bool_(), nullable=False))


def build_insertion_test_set(store: str, seed: int = 0, n_insertions: int = 60,
                             per_session: int = 2, world: StoreWorld | None = None
                             ) -> list[tuple[str, SimFrame]]:
    """(insertion_id, frame) for `n_insertions` whole insertions of `store`, at most `per_session`
    from one session (many sessions: devices, light, clutter), from session seeds of their own."""
    world = world or default_world()
    if store not in world.store_names and store != "manual":
        raise KeyError(f"unknown store {store!r}; world has {world.store_names}")
    tag = f"insertions-{store}"
    rng = np.random.default_rng(_session_seed(tag + "-plan", seed, 0))
    out: list[tuple[str, SimFrame]] = []
    taken, j = 0, 0
    while taken < n_insertions:
        sess = world.session(store, _session_seed(tag, seed, j))
        j += 1
        n = len(sess.insertions)
        pick = sorted(int(i) for i in rng.choice(n, size=min(per_session, n, n_insertions - taken),
                                                 replace=False))
        by_ins: dict[int, list[SimFrame]] = {k: [] for k in pick}
        for fr in sess:
            step = sess.steps[fr.index]
            if step.ins in by_ins and step.phase in INSERTION_PHASES:
                by_ins[step.ins].append(fr)
        for k in pick:
            out.extend((f"{sess.session_id}-i{k:02d}", fr) for fr in by_ins[k])
        taken += len(pick)
    return out


def insertion_table(rows: Iterable[tuple[str, SimFrame]]) -> pa.Table:
    rows = list(rows)
    table = frames_to_table(fr for _, fr in rows)
    table = table.append_column(EXTRA_FIELDS[0], pa.array([i for i, _ in rows], pa.string()))
    table = table.append_column(EXTRA_FIELDS[1], pa.array([fr.truth.phase for _, fr in rows], pa.string()))
    return table.append_column(EXTRA_FIELDS[2], pa.array([fr.truth.barcode_in_view for _, fr in rows],
                                                         pa.bool_()))


def export_insertion_set(rows: Iterable[tuple[str, SimFrame]],
                         dest: str | os.PathLike | BinaryIO) -> dict:
    """One Parquet file, byte-deterministic like every simulator export."""
    table = insertion_table(rows)
    data = _parquet_bytes(table)
    path = _write_bytes(data, dest if hasattr(dest, "write") else Path(dest))
    ids = table.column("insertion_id").to_pylist()
    return {"path": path, "rows": table.num_rows, "insertions": len(set(ids)), "bytes": len(data)}
