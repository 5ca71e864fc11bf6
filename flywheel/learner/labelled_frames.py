"""Labelled frames as a table: the simulator's Parquet export format, normalised.

Columns (one row per frame): frame_id, session_id, device_id, store, distribution, sku (EAN-13 or
null), is_empty, item_box ([x1, y1, x2, y2] or null), hand_box, conditions (condition -> strength),
image_png, width, height, objects (null, or for an image with several labelled objects a JSON list
[[class, x1, y1, x2, y2], ...] whose first entry is sku/item_box: detection trains on all of them).
`conditions` arrives as a struct, a map or a JSON string depending on the
writer; it is normalised to a JSON string so hashing and slicing see one form.
"""

from __future__ import annotations

import io
import json
from typing import Any

import polars as pl

REQUIRED_COLUMNS: tuple[str, ...] = ("frame_id", "sku", "image_png")  # what the Learner needs
# Columns the Learner does not need, filled when absent: each frame its own split group, a lab
# ("manual") frame of an unknown device, empty exactly when it names no SKU.
DEFAULTS: dict[str, pl.Expr] = {
    "session_id": pl.col("frame_id"),
    "device_id": pl.lit("unknown"),
    "store": pl.lit("manual"),
    "distribution": pl.lit("manual"),
    "is_empty": pl.col("sku").is_null(),
}


def read_frames(data: bytes | str) -> pl.DataFrame:
    """Read a frames Parquet (bytes or a path) and normalise it; raise ValueError on missing columns."""
    df = pl.read_parquet(io.BytesIO(data) if isinstance(data, bytes | bytearray) else data)
    return normalise(df)


def normalise(df: pl.DataFrame) -> pl.DataFrame:
    missing = [c for c in REQUIRED_COLUMNS if c not in df.columns]
    if missing:
        raise ValueError(f"frames table lacks columns {missing}; has {df.columns}")
    absent = {c: e for c, e in DEFAULTS.items() if c not in df.columns}
    if absent:
        df = df.with_columns(pl.col("frame_id").cast(pl.String), pl.col("sku").cast(pl.String))
        df = df.with_columns(**absent)
    if "conditions" not in df.columns:
        df = df.with_columns(pl.lit("{}").alias("conditions"))
    elif df.schema["conditions"] != pl.String:
        df = df.with_columns(pl.Series("conditions", [_conditions_json(v) for v in df["conditions"]]))
    for col in ("item_box", "hand_box"):
        if col not in df.columns:
            df = df.with_columns(pl.lit(None, dtype=pl.List(pl.Int32)).alias(col))
    if "objects" not in df.columns:  # several labelled objects (JSON [[class, x1, y1, x2, y2], ...])
        df = df.with_columns(pl.lit(None, dtype=pl.String).alias("objects"))
    for col in ("width", "height"):
        if col not in df.columns:
            df = df.with_columns(pl.lit(None, dtype=pl.Int32).alias(col))
    return df.with_columns(
        pl.col("frame_id").cast(pl.String), pl.col("session_id").cast(pl.String),
        pl.col("device_id").cast(pl.String), pl.col("store").cast(pl.String),
        pl.col("sku").cast(pl.String), pl.col("is_empty").cast(pl.Boolean),
    )


def _conditions_json(value: Any) -> str:
    if value is None:
        return "{}"
    if isinstance(value, str):
        return json.dumps(json.loads(value), sort_keys=True)
    if isinstance(value, list):  # a polars Map arrives as a list of {key, value} structs
        value = {d["key"]: d["value"] for d in value}
    return json.dumps({k: float(v) for k, v in value.items() if v is not None}, sort_keys=True)

