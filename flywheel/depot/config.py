"""Depot settings and the lake layout of everything the Depot owns (under `depot/`)."""

from __future__ import annotations

from dataclasses import dataclass

from edge_agent.contract.ids import validate_id
from edge_agent.contract.layout import DEPOT, validate_date


@dataclass(frozen=True)
class DepotConfig:
    frame_every: int = 8  # sample every Nth frame (plus every trigger frame)
    max_clip_bytes: int = 256 * 1024 * 1024  # larger clips are quarantined unread ("oversize")
    pending_timeout_s: float = 900.0  # a clip without its sidecar (or the reverse) waits this long
    thumb_px: int = 160  # longest side of a thumbnail JPEG (stored in the frame's row)
    thumb_quality: int = 85  # thumbnail JPEG quality
    jpeg_quality: int = 90  # full-frame JPEG stored in the Parquet rows
    max_keys_per_tick: int = 5000  # the sensor reads at most this many new arrival markers per tick
    max_clock_skew_s: float = 3600.0  # markers stamped further ahead than this never move the cursor


FRAMES = f"{DEPOT}/frames"
THUMBS = f"{DEPOT}/thumbs"  # thumbnails materialised on demand for search results
QUARANTINE = f"{DEPOT}/quarantine"
REPLAYS = f"{DEPOT}/replays"
FLEET = f"{DEPOT}/fleet"
INDEX = f"{DEPOT}/index"  # the LanceDB database directory (local or S3)
FRAMES_TABLE = "frames"


def frames_key(day: str) -> str:
    return f"{FRAMES}/date={validate_date(day)}/part.parquet"


def thumb_key(day: str, clip_id: str, frame_index: int) -> str:
    return f"{THUMBS}/date={validate_date(day)}/{validate_id(clip_id, 'clip_id')}/{frame_index:06d}.jpg"


def replay_prefix(clip_id: str) -> str:
    return f"{REPLAYS}/{validate_id(clip_id, 'clip_id')}"


def fleet_key(day: str) -> str:
    return f"{FLEET}/date={validate_date(day)}/part.parquet"


def embeddings_key(encoder_id: str, day: str) -> str:
    """Frame vectors of one encoder for one day (frame_id, vector), computed at ingest from the
    decoded pixels so indexing does not decode the JPEGs again."""
    enc = validate_id(encoder_id, "encoder_id")
    return f"{DEPOT}/embeddings/{enc}/date={validate_date(day)}/part.parquet"
