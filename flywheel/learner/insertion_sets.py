"""Frozen insertion-level test sets in the lake, beside the frame-level standard sets:

    depot/insertion_sets/<name>/<sha16>.parquet + current.json     (frozen: never replaced)

Same rules as reference_sets' standard sets (content-addressed, drift reported, never read by
training: dataset versions refuse their frames and sessions through `reference_sets.frozen_ids`).
"""

from __future__ import annotations

import polars as pl

from edge_agent.lake import Lake
from flywheel.learner.labelled_frames import read_frames
from flywheel.learner.reference_sets import (
    INSERTION_AREA,
    Imported,
    import_versioned,
    read_current_bytes,
    standard_set_names,
)

INSERTION_COLUMNS = ("insertion_id", "phase", "barcode_in_view")


def insertion_area(name: str) -> str:
    return f"{INSERTION_AREA}/{name}"


def import_insertion_set(lake: Lake, name: str, parquet: bytes) -> Imported:
    frames = read_frames(parquet)
    missing = [c for c in INSERTION_COLUMNS if c not in frames.columns]
    if missing:
        raise ValueError(f"insertion set {name!r} lacks columns {missing}")
    return import_versioned(lake, insertion_area(name), name, parquet, "parquet", frames.height, True)


def insertion_set_names(lake: Lake) -> list[str]:
    return standard_set_names(lake, INSERTION_AREA)


def read_insertion_sets(lake: Lake) -> tuple[dict[str, pl.DataFrame], dict[str, str]]:
    """(frames by set name, sha256 by set name); empty when none were imported."""
    frames, versions = {}, {}
    for name in insertion_set_names(lake):
        current, data = read_current_bytes(lake, insertion_area(name))
        frames[name] = read_frames(data)
        versions[name] = current["sha256"]
    return frames, versions
