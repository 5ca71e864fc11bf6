"""Search the Depot: metadata filters, similarity to a clip / frame / image file, text queries.

Filters run inside LanceDB (scalar indices, prefiltered before the vector search, so a filtered
search returns `limit` matching frames, not `limit` candidates filtered down).

Thumbnails travel inside the index rows (`thumb_jpeg`); a result's `thumbnail` is a file (local
lake) or object URL (S3) under `depot/thumbs/`, written the first time a search returns that frame.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field, fields
from datetime import date
from pathlib import Path
from typing import Any

import numpy as np

from edge_agent.lake import Lake, LakeError, ObjectExists
from flywheel.depot import frames_table
from flywheel.depot.config import thumb_key
from flywheel.depot.embed import _l2, load_encoder
from flywheel.depot.frames import from_image_bytes
from flywheel.depot.index import IndexLocation, _sql_str, open_table

RESULT_COLUMNS = frames_table.columns(
    "frame_id", "clip_id", "frame_index", "t_s", "captured_at", "date", "store_id", "device_id",
    "model_version", "triggers", "frame_triggers", "prediction", "confidence", "blur", "brightness",
    "clip_key", "thumb_jpeg")


@dataclass
class SearchQuery:
    store: str | None = None
    device: str | None = None
    date_from: str | None = None  # inclusive, YYYY-MM-DD
    date_to: str | None = None  # inclusive
    trigger: str | None = None  # a rule name: clips captured by it
    trigger_frames_only: bool = False  # only the frames where a trigger fired
    min_confidence: float | None = None
    max_confidence: float | None = None
    model_version: str | None = None
    label: str | None = None  # the device model's top-1 label ("none" = predicted nothing)
    like_clip: str | None = None  # clip id: frames like this clip (its other frames excluded)
    like_frame: str | None = None  # frame id
    like_image: str | None = None  # path of an image file
    text: str | None = None  # needs a text-image encoder (CLIP)
    limit: int = 20

    def where(self) -> str | None:
        parts = []
        for col, val in (("store_id", self.store), ("device_id", self.device),
                         ("model_version", self.model_version)):
            if val is not None:
                parts.append(f"{col} = {_sql_str(val)}")
        if self.date_from:
            parts.append(f"date >= {_sql_str(date.fromisoformat(self.date_from).isoformat())}")
        if self.date_to:
            parts.append(f"date <= {_sql_str(date.fromisoformat(self.date_to).isoformat())}")
        if self.trigger:
            esc = self.trigger.replace("'", "''").replace("%", "\\%").replace("_", "\\_")
            parts.append(f"triggers LIKE '%{esc}%'")
        if self.trigger_frames_only:
            parts.append("is_trigger_frame = true")
        if self.min_confidence is not None:
            parts.append(f"confidence >= {float(self.min_confidence)}")
        if self.max_confidence is not None:
            parts.append(f"confidence <= {float(self.max_confidence)}")
        if self.label is not None:
            parts.append("prediction IS NULL" if self.label.lower() == "none"
                         else f"prediction = {_sql_str(self.label)}")
        if self.like_clip:
            parts.append(f"clip_id != {_sql_str(self.like_clip)}")
        return " AND ".join(parts) or None


@dataclass
class SearchHit:
    frame_id: str
    clip_id: str
    frame_index: int
    captured_at: Any
    date: str
    store_id: str
    device_id: str
    model_version: str
    triggers: str
    prediction: str | None
    confidence: float
    thumbnail: str  # a local path (file lake) or URL, materialised for this result
    clip_key: str
    distance: float | None = None
    thumbnail_jpeg: bytes | None = field(default=None, repr=False)  # the same picture, as bytes

    def as_dict(self) -> dict[str, Any]:
        """JSON-friendly (the thumbnail as its path, not its bytes)."""
        d = {f.name: getattr(self, f.name) for f in fields(self) if f.name != "thumbnail_jpeg"}
        d["captured_at"] = str(self.captured_at)
        return d


def _vector_of(tbl: Any, where: str) -> np.ndarray:
    rows = tbl.search().where(where).select(["vector"]).limit(10_000).to_list()
    if not rows:
        raise LookupError(f"nothing in the index matches {where}")
    return _l2(np.mean([np.asarray(r["vector"], np.float32) for r in rows], axis=0))


def query_vector(lake: Lake, q: SearchQuery, tbl: Any, spec: dict[str, Any]) -> np.ndarray | None:
    if q.like_frame:
        return _vector_of(tbl, f"frame_id = {_sql_str(q.like_frame)}")
    if q.like_clip:
        return _vector_of(tbl, f"clip_id = {_sql_str(q.like_clip)}")
    if q.like_image or q.text:
        enc = load_encoder(spec, lake)
        if q.like_image:
            return enc.encode_images([from_image_bytes(Path(q.like_image).read_bytes())])[0]
        if not enc.supports_text:
            raise ValueError(f"text search needs a text-image encoder; the index uses {spec['kind']}")
        return enc.encode_text([q.text])[0]
    return None


def search(lake: Lake, q: SearchQuery, location: IndexLocation | None = None) -> list[SearchHit]:
    tbl, spec = open_table(lake, location)
    vec = query_vector(lake, q, tbl, spec)
    where = q.where()
    if vec is not None:
        builder = tbl.search(vec, vector_column_name="vector").distance_type("cosine")
        if where:
            builder = builder.where(where, prefilter=True)
        rows = builder.select([*RESULT_COLUMNS, "_distance"]).limit(q.limit).to_list()
    else:
        builder = tbl.search()
        if where:
            builder = builder.where(where)
        rows = builder.select(RESULT_COLUMNS).limit(q.limit).to_list()
        rows.sort(key=lambda r: (str(r["captured_at"]), r["frame_id"]))
    if lake.is_local or len(rows) < 2:
        return [_hit(lake, r) for r in rows]
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(max_workers=8) as pool:  # one put per new thumbnail: overlap the round trips
        return list(pool.map(lambda r: _hit(lake, r), rows))


def materialise_thumbnail(lake: Lake, date_: str, clip_id: str, frame_index: int, jpeg: bytes | None) -> str:
    """The thumbnail's path (local lake) or URL (S3), writing it under depot/thumbs/ if it is not
    there yet. A lake this process cannot write to (read-only credentials) gets a local cache file."""
    key = thumb_key(date_, clip_id, frame_index)
    if lake.is_local:
        path = lake.local_path(key)
        if jpeg is not None and not path.exists():
            lake.put(key, jpeg)
        return str(path)
    if jpeg is None:
        return lake.url(key)
    try:
        lake.put(key, jpeg, if_absent=True)
    except ObjectExists:
        pass
    except LakeError:
        import tempfile

        cache = Path(tempfile.gettempdir()) / "flywheel-thumbs" / key
        if not cache.exists():
            cache.parent.mkdir(parents=True, exist_ok=True)
            tmp = cache.with_suffix(f".{os.getpid()}.tmp")
            tmp.write_bytes(jpeg)
            tmp.replace(cache)
        return str(cache)
    return lake.url(key)


def _hit(lake: Lake, r: dict[str, Any]) -> SearchHit:
    jpeg = r.get("thumb_jpeg")
    thumb = materialise_thumbnail(lake, r["date"], r["clip_id"], r["frame_index"], jpeg)
    return SearchHit(frame_id=r["frame_id"], clip_id=r["clip_id"], frame_index=r["frame_index"],
                     captured_at=r["captured_at"], date=r["date"], store_id=r["store_id"],
                     device_id=r["device_id"], model_version=r["model_version"], triggers=r["triggers"],
                     prediction=r["prediction"], confidence=r["confidence"], thumbnail=thumb,
                     clip_key=r["clip_key"], distance=r.get("_distance"), thumbnail_jpeg=jpeg)
