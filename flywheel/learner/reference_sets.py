"""Versioned, content-addressed imports into the lake: the catalog, the manual collection and the
frozen standard test sets.

    depot/catalog/<sha16>.json + current.json
    depot/manual_collection/<sha16>.parquet + current.json          (bootstrap labelled data)
    depot/standard_sets/<name>/<sha16>.parquet + current.json       (frozen: never replaced)

A frozen set, once imported, stays: if its generator later produces different bytes, the import
keeps the recorded version and reports the drift instead of silently moving the goalposts that every
model is compared on. Training never reads these sets; dataset versions refuse their frame ids.
"""

from __future__ import annotations

import hashlib
import io
import json
from dataclasses import dataclass
from datetime import UTC, datetime

import polars as pl

from edge_agent.lake import Lake, ObjectExists, ObjectNotFound
from flywheel.learner.errors import DatasetError
from flywheel.learner.labelled_frames import read_frames

CATALOG_AREA = "depot/catalog"
MANUAL_AREA = "depot/manual_collection"
STANDARD_AREA = "depot/standard_sets"
MANUAL_SET = "manual"  # the manual-distribution standard set; production sets are "store_<S>"


@dataclass(frozen=True)
class Imported:
    name: str
    key: str  # the content-addressed object
    sha256: str
    rows: int
    created: bool  # False when the same bytes were already there
    drift_sha256: str | None = None  # frozen sets: what the generator produced now, if different

    def as_dict(self) -> dict:
        return dict(self.__dict__)


def _current_key(area: str) -> str:
    return f"{area}/current.json"


def import_versioned(lake: Lake, area: str, name: str, data: bytes, ext: str, rows: int,
                     frozen: bool) -> Imported:
    sha = hashlib.sha256(data).hexdigest()
    current = read_current(lake, area)
    if frozen and current is not None and current["sha256"] != sha:
        return Imported(name, current["key"], current["sha256"], current["rows"], False, sha)
    key = f"{area}/{sha[:16]}.{ext}"
    try:
        lake.put(key, data, if_absent=True)
        created = True
    except ObjectExists:
        created = False
    if current is None or current["sha256"] != sha:
        pointer = {"name": name, "key": key, "sha256": sha, "rows": rows, "bytes": len(data),
                   "imported_at": datetime.now(UTC).isoformat()}
        lake.put(_current_key(area), json.dumps(pointer, indent=1, sort_keys=True).encode())
    return Imported(name, key, sha, rows, created)


def read_current(lake: Lake, area: str) -> dict | None:
    try:
        return json.loads(lake.get(_current_key(area)))
    except ObjectNotFound:
        return None


def read_current_bytes(lake: Lake, area: str) -> tuple[dict, bytes]:
    current = read_current(lake, area)
    if current is None:
        raise DatasetError(f"nothing imported under {area}/ in {lake.uri} yet")
    data = lake.get(current["key"])
    if hashlib.sha256(data).hexdigest() != current["sha256"]:
        raise DatasetError(f"{current['key']} does not match its recorded sha256")
    return current, data


# -- catalog ------------------------------------------------------------------------------------

def import_catalog(lake: Lake, catalog_json: str) -> Imported:
    n = len(json.loads(catalog_json)["products"])
    return import_versioned(lake, CATALOG_AREA, "catalog", catalog_json.encode(), "json", n, False)


def catalog_skus(lake: Lake) -> set[str]:
    _, data = read_current_bytes(lake, CATALOG_AREA)
    return {p["ean"] for p in json.loads(data)["products"]}


# -- manual collection and standard sets --------------------------------------------------------

def import_manual_collection(lake: Lake, parquet: bytes) -> Imported:
    rows = read_frames(parquet).height
    return import_versioned(lake, MANUAL_AREA, "manual_collection", parquet, "parquet", rows, False)


def read_manual_collection(lake: Lake) -> tuple[dict, pl.DataFrame]:
    current, data = read_current_bytes(lake, MANUAL_AREA)
    return current, read_frames(data)


def standard_area(name: str) -> str:
    return f"{STANDARD_AREA}/{name}"


def import_standard_set(lake: Lake, name: str, parquet: bytes) -> Imported:
    rows = read_frames(parquet).height
    return import_versioned(lake, standard_area(name), name, parquet, "parquet", rows, True)


def standard_set_names(lake: Lake) -> list[str]:
    names = set()
    for info in lake.list(f"{STANDARD_AREA}/"):
        parts = info.key.split("/")
        if len(parts) == 4 and parts[3] == "current.json":
            names.add(parts[2])
    return sorted(names)


def read_standard_sets(lake: Lake, names: list[str] | None = None
                       ) -> tuple[dict[str, pl.DataFrame], dict[str, str]]:
    """(frames by set name, sha256 by set name); raises when a set is missing."""
    names = names or standard_set_names(lake)
    if not names:
        raise DatasetError(f"no standard test sets imported in {lake.uri}")
    frames, versions = {}, {}
    for name in names:
        current, data = read_current_bytes(lake, standard_area(name))
        frames[name] = read_frames(data)
        versions[name] = current["sha256"]
    return frames, versions


def production_set_names(names: list[str]) -> list[str]:
    return [n for n in names if n != MANUAL_SET]


def frozen_ids(lake: Lake) -> tuple[set[str], set[str]]:
    """Frame ids and session ids of every frozen standard set (for the leakage guard)."""
    frame_ids: set[str] = set()
    sessions: set[str] = set()
    for name in standard_set_names(lake):
        _, data = read_current_bytes(lake, standard_area(name))
        df = pl.read_parquet(io.BytesIO(data), columns=["frame_id", "session_id"])
        frame_ids.update(df["frame_id"].to_list())
        sessions.update(df["session_id"].to_list())
    return frame_ids, sessions
