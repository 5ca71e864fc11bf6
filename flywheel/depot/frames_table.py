"""The depot's frames table (depot/frames/date=*/part.parquet, and the LanceDB index built from it):
its columns, once. Ingest writes exactly these, the schema is built from them, and search reads a
subset of them."""

from __future__ import annotations

# (column, Arrow type): one row per sampled frame of an ingested clip
COLUMNS: tuple[tuple[str, str], ...] = (
    ("frame_id", "string"), ("clip_id", "string"), ("frame_index", "int32"), ("t_s", "float64"),
    ("captured_at", "timestamp_utc"), ("date", "string"), ("store_id", "string"),
    ("device_id", "string"), ("model_version", "string"), ("rule_set_version", "string"),
    ("agent_version", "string"), ("is_trigger_frame", "bool"), ("frame_triggers", "string"),
    ("triggers", "string"), ("barcode", "string"), ("weight_g", "float64"),
    ("weight_change_g", "float64"), ("aisle", "string"), ("x_m", "float64"),
    ("prediction", "string"), ("confidence", "float64"), ("blur", "float64"),
    ("brightness", "float64"), ("width", "int32"), ("height", "int32"), ("clip_key", "string"),
    ("clip_sha256", "string"), ("thumb_jpeg", "binary"), ("image_jpeg", "binary"),
)
NAMES: list[str] = [name for name, _ in COLUMNS]
JPEG_COLUMNS = ("thumb_jpeg", "image_jpeg")
METADATA_COLUMNS = [c for c in NAMES if c not in JPEG_COLUMNS]


def columns(*names: str) -> list[str]:
    """A subset of the table's columns, refused if any is not one of them (a typo fails at import)."""
    unknown = [n for n in names if n not in NAMES]
    if unknown:
        raise KeyError(f"not columns of the frames table: {unknown}")
    return list(names)


def arrow_schema():  # noqa: ANN201 - pyarrow imported lazily
    import pyarrow as pa

    types = {"string": pa.string(), "int32": pa.int32(), "float64": pa.float64(), "bool": pa.bool_(),
             "binary": pa.binary(), "timestamp_utc": pa.timestamp("us", tz="UTC")}
    return pa.schema([(name, types[kind]) for name, kind in COLUMNS])
