"""The Label stage's Parquet tables under `label/` (one file per capture day, rewritten atomically).

This module is the fixed interface between the pre-label half (candidates, prelabels) and the review
half (routing, tasks, merge): schemas, lake keys, read and write helpers.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from typing import Any

from edge_agent.contract.layout import validate_date
from edge_agent.lake import Lake, ObjectNotFound

LABEL = "label"
CANDIDATES = f"{LABEL}/candidates"
PRELABELS = f"{LABEL}/prelabels"
REVIEW = f"{LABEL}/review"
MERGED = f"{LABEL}/merged"


def candidates_key(day: str) -> str:
    return f"{CANDIDATES}/date={validate_date(day)}/candidates.parquet"


def prelabels_key(day: str) -> str:
    return f"{PRELABELS}/date={validate_date(day)}/prelabels.parquet"


def _frame_fields() -> list[Any]:
    import pyarrow as pa

    return [
        ("frame_id", pa.string()), ("clip_id", pa.string()), ("date", pa.string()),
        ("store_id", pa.string()), ("device_id", pa.string()), ("frame_index", pa.int32()),
        ("t_s", pa.float64()),
    ]


def candidates_schema():  # noqa: ANN201 - pyarrow imported lazily
    import pyarrow as pa

    return pa.schema(_frame_fields() + [
        ("kept", pa.bool_()),  # passed the empty-background filter
        ("empty_score", pa.float64()),  # 1 = surely empty
        ("reason", pa.string()),  # why kept or dropped (e.g. "background", "object", "trigger")
        # the filter's by-products for the item detector (flywheel.label.background): a kept frame's
        # largest foreground region, [x1, y1, x2, y2] in 0..1 of the frame; a clean store empty
        ("fg_box", pa.list_(pa.float32())),
        ("clean_empty", pa.bool_()),
    ])


def vote_type():  # noqa: ANN201
    import pyarrow as pa

    return pa.struct([
        ("labeler", pa.string()), ("version", pa.string()),
        ("label", pa.string()),  # SKU EAN-13, null = abstain
        ("confidence", pa.float64()), ("evidence", pa.string()),
        ("candidates", pa.list_(pa.string())),  # labels it finds possible (the load cell narrows)
    ])


def vote_candidates(votes: Iterable[Mapping[str, Any]] | None, labeler: str | None = None) -> list[list[str]]:
    """The candidate lists of the votes that narrowed the label (vote_type's `candidates`: the load
    cell's products within tolerance, the whole list), of one `labeler` or of any. The one reader of
    that field: the routing's contradiction, the grouping's cues and the audit's weak truth use it."""
    return [list(v["candidates"]) for v in votes or []
            if v.get("candidates") and (labeler is None or v.get("labeler") == labeler)]


def prelabels_schema():  # noqa: ANN201
    import pyarrow as pa

    return pa.schema(_frame_fields() + [
        ("label", pa.string()),  # SKU EAN-13, null when the ensemble abstains
        ("confidence", pa.float64()),  # calibrated, 0..1
        ("votes", pa.list_(vote_type())),  # every labeler's vote, abstentions included
        ("labeler_versions", pa.string()),  # JSON object name -> version
        ("disagreement", pa.bool_()),  # labelers that voted disagree
        ("barcode_mismatch", pa.bool_()),  # a vision labeler contradicts the barcode
        ("candidates", pa.list_(pa.string())),  # short list shown to an annotator, best first
    ])


def __getattr__(name: str) -> Any:  # CANDIDATES_SCHEMA / PRELABELS_SCHEMA without importing pyarrow eagerly
    if name == "CANDIDATES_SCHEMA":
        return candidates_schema()
    if name == "PRELABELS_SCHEMA":
        return prelabels_schema()
    raise AttributeError(name)


def _write(lake: Lake, key: str, table: Any, schema: Any) -> int:
    import pyarrow as pa
    import pyarrow.parquet as pq

    if not isinstance(table, pa.Table):
        table = pa.Table.from_pylist(list(table), schema=schema)
    table = table.select(schema.names).cast(schema)
    sink = pa.BufferOutputStream()
    pq.write_table(table, sink, compression="zstd")
    lake.put(key, memoryview(sink.getvalue()))  # one put: atomic replace of the day's file
    return table.num_rows


def _read(lake: Lake, key: str, schema: Any, columns: list[str] | None) -> Any:
    import pyarrow as pa
    import pyarrow.parquet as pq

    try:
        raw = lake.get(key)
    except ObjectNotFound:
        empty = schema.empty_table()
        return empty.select(columns) if columns else empty
    return pq.read_table(pa.BufferReader(raw), columns=columns)


def write_candidates(lake: Lake, day: str, table: Any) -> int:
    """Replace the day's candidates (a pyarrow Table or a list of row dicts); returns rows written."""
    return _write(lake, candidates_key(day), table, candidates_schema())


def read_candidates(lake: Lake, day: str, columns: list[str] | None = None) -> Any:
    """The day's candidates table (empty, with the schema, when none was written)."""
    return _read(lake, candidates_key(day), candidates_schema(), columns)


def write_prelabels(lake: Lake, day: str, table: Any) -> int:
    """Replace the day's pre-labels (a pyarrow Table or a list of row dicts); returns rows written."""
    return _write(lake, prelabels_key(day), table, prelabels_schema())


def read_prelabels(lake: Lake, day: str, columns: list[str] | None = None) -> Any:
    """The day's pre-labels table (empty, with the schema, when none was written)."""
    return _read(lake, prelabels_key(day), prelabels_schema(), columns)


def labeler_versions_json(versions: dict[str, str]) -> str:
    return json.dumps(dict(sorted(versions.items())), separators=(",", ":"))
