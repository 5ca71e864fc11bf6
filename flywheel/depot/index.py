"""The search index: one LanceDB table per encoder, on the local lake or on S3.

Rows are the frames table minus the full-size JPEG, plus `vector` (the thumbnail JPEG stays, so a
search result carries its picture). Indexing a day replaces that day's
rows in one commit (merge-insert on frame_id), so re-running gives the same table content. Scalar
indices cover the filter columns from the start; the vector index (IVF_PQ, cosine) is built once
the table holds `vector_index_min_rows` rows, and indices are refreshed by `optimize()` once the
unindexed rows are a noticeable share (until then those rows are searched exactly, so results are
never missing). `depot/index_current.json` names the
table and the encoder spec, so search uses the same encoder the index was built with.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from edge_agent.lake import Lake, ObjectNotFound
from flywheel.depot import frames_table
from flywheel.depot.config import FRAMES, INDEX
from flywheel.depot.embed import FrameEncoder, encoder_id
from flywheel.depot.frames import from_image_bytes
from flywheel.depot.ingest import read_frames
from flywheel.depot.vectors import read_vectors, write_vectors

CURRENT_KEY = "depot/index_current.json"
OPTIMIZE_MIN_ROWS = 5_000  # fold new rows into the indices past this many unindexed rows...
OPTIMIZE_SHARE = 0.1  # ...and past this share of the table
SCALAR_INDICES = {  # column -> LanceDB scalar index type
    "date": "BTREE", "store_id": "BITMAP", "device_id": "BTREE", "model_version": "BITMAP",
    "prediction": "BTREE", "confidence": "BTREE", "clip_id": "BTREE", "frame_id": "BTREE",
    "is_trigger_frame": "BITMAP",
}
frames_table.columns(*SCALAR_INDICES)  # each one is a frames-table column (fails at import if not)


@dataclass(frozen=True)
class IndexLocation:
    uri: str  # a local directory or s3://bucket/prefix/depot/index
    storage_options: dict[str, str] = field(default_factory=dict)

    @classmethod
    def for_lake(cls, lake: Lake) -> IndexLocation:
        """The index inside the lake itself (depot/index), with the lake's S3 credentials."""
        if lake.is_local:
            return cls(str(lake.local_path(INDEX)))
        return cls(lake.url(INDEX), s3_storage_options(lake))

    def connect(self):  # noqa: ANN201 - lancedb connection
        import lancedb

        return lancedb.connect(self.uri, storage_options=self.storage_options or None)


def s3_storage_options(lake: Lake) -> dict[str, str]:
    """LanceDB (object_store) settings equivalent to the lake's S3Options."""
    opts = lake.s3.store_kwargs() if lake.s3 is not None else None
    if opts is None:
        from edge_agent.lake import S3Options

        opts = S3Options().store_kwargs()
    cfg = opts["config"]
    out = {"aws_region": cfg.get("region", "us-east-1")}
    if "endpoint" in cfg:
        out["aws_endpoint"] = cfg["endpoint"]
    if "access_key_id" in cfg:
        out["aws_access_key_id"] = cfg["access_key_id"]
        out["aws_secret_access_key"] = cfg["secret_access_key"]
    if opts["client_options"].get("allow_http"):
        out["allow_http"] = "true"
    return out


@dataclass
class IndexReport:
    day: str
    table: str
    rows_day: int = 0
    rows_total: int = 0
    scalar_indices: list[str] = field(default_factory=list)
    vector_index: bool = False
    seconds_embed: float = 0.0  # getting the vectors (reused from ingest, or embedded here)
    vectors_reused: int = 0  # vectors the ingest had already computed
    seconds_write: float = 0.0


def read_current(lake: Lake) -> dict[str, Any] | None:
    try:
        return json.loads(lake.get(CURRENT_KEY))
    except ObjectNotFound:
        return None


def _sql_str(v: str) -> str:
    return "'" + str(v).replace("'", "''") + "'"


def frames_to_arrow(table: Any, vectors: np.ndarray) -> Any:
    import pyarrow as pa

    cols = [c for c in table.column_names if c != "image_jpeg"]  # thumb_jpeg stays: results show it
    out = table.select(cols)
    flat = pa.array(np.ascontiguousarray(vectors, np.float32).ravel(), pa.float32())
    return out.append_column("vector", pa.FixedSizeListArray.from_arrays(flat, vectors.shape[1]))


INDEX_COLUMNS = [c for c in frames_table.NAMES if c != "image_jpeg"]


def embed_table(table: Any, encoder: FrameEncoder, batch: int = 64) -> np.ndarray:
    """Vectors of frames from their stored JPEGs (`table` needs frame_id and image_jpeg)."""
    jpegs = table.column("image_jpeg").to_pylist()
    parts = [encoder.encode_images([from_image_bytes(b) for b in jpegs[i:i + batch]])
             for i in range(0, len(jpegs), batch)]
    return np.concatenate(parts) if parts else np.zeros((0, encoder.dim), np.float32)


def day_vectors(lake: Lake, day: str, frames: Any, encoder: FrameEncoder, report: IndexReport) -> np.ndarray:
    """The day's vectors in frames order: those the ingest stored, the rest embedded from the JPEGs
    (frames ingested before this encoder was chosen; read only then) and stored for next time."""
    import pyarrow.compute as pc

    enc_id = encoder_id(encoder.spec)
    stored = read_vectors(lake, enc_id, day)
    ids = frames.column("frame_id").to_pylist()
    missing = [i for i, fid in enumerate(ids) if fid not in stored]
    report.vectors_reused = len(ids) - len(missing)
    if missing:
        full = read_frames(lake, day, columns=["frame_id", "image_jpeg"])
        at = {fid: i for i, fid in enumerate(full.column("frame_id").to_pylist())} if full is not None else {}
        if any(ids[i] not in at for i in missing):
            raise LookupError(f"the frames of {day} changed while being indexed; index the day again")
        fresh = embed_table(full.take(pc.cast([at[ids[i]] for i in missing], "int64")), encoder)
        stored.update(zip((ids[i] for i in missing), fresh, strict=True))
        write_vectors(lake, enc_id, day, {fid: stored[fid] for fid in ids})
    return np.stack([stored[fid] for fid in ids]) if ids else np.zeros((0, encoder.dim), np.float32)


def ensure_indices(tbl: Any, rows: int, vector_index_min_rows: int) -> tuple[list[str], bool]:
    have = {tuple(ix.columns)[0]: ix for ix in tbl.list_indices()}
    made = []
    for col, kind in SCALAR_INDICES.items():
        if col not in have:
            tbl.create_scalar_index(col, index_type=kind, replace=True)
            made.append(col)
    vector = "vector" in have
    if not vector and rows >= vector_index_min_rows:
        dim = tbl.schema.field("vector").type.list_size
        sub = next((dim // k for k in (16, 8, 4) if dim % k == 0), 1)  # 16-dim PQ sub-vectors
        tbl.create_index(metric="cosine", vector_column_name="vector", index_type="IVF_PQ",
                         num_partitions=max(1, int(math.sqrt(rows))), num_sub_vectors=sub)
        vector = True
    elif not made and have:
        # Fold new rows into the indices only once they are a noticeable share: until then LanceDB
        # scans the few unindexed rows exactly (results stay complete), and optimize() (compaction
        # + index update) costs about as much as a whole day's indexing.
        stats = tbl.index_stats(next(iter(have.values())).name)
        if stats.num_unindexed_rows > max(OPTIMIZE_MIN_ROWS, OPTIMIZE_SHARE * rows):
            tbl.optimize()
    return made, vector


def index_day(lake: Lake, day: str, encoder: FrameEncoder, location: IndexLocation | None = None, *,
              vector_index_min_rows: int = 10_000) -> IndexReport:
    """Embed the day's frames and replace the day's rows in the encoder's table."""
    import time

    location = location or IndexLocation.for_lake(lake)
    name = "frames_" + encoder_id(encoder.spec)
    report = IndexReport(day=day, table=name)
    frames = read_frames(lake, day, columns=INDEX_COLUMNS)  # the JPEGs only when vectors are missing
    db = location.connect()
    t0 = time.perf_counter()
    vectors = day_vectors(lake, day, frames, encoder, report) if frames is not None \
        else np.zeros((0, encoder.dim), np.float32)
    report.seconds_embed = time.perf_counter() - t0
    t0 = time.perf_counter()
    exists = name in table_names(db)
    if frames is not None and frames.num_rows:
        data = frames_to_arrow(frames, vectors)
        if exists:
            # One atomic commit replaces the day's rows: upsert by frame id and drop the day's rows
            # that are gone. Two runs of the same day racing cannot leave duplicates (delete + add
            # could), and a re-run leaves the same rows.
            tbl = db.open_table(name)
            (tbl.merge_insert("frame_id").when_matched_update_all().when_not_matched_insert_all()
             .when_not_matched_by_source_delete(f"date = {_sql_str(day)}").execute(data))
        else:
            tbl = db.create_table(name, data=data)
    elif exists:
        tbl = db.open_table(name)
        tbl.delete(f"date = {_sql_str(day)}")
    else:
        return report
    report.rows_day = 0 if frames is None else frames.num_rows
    report.rows_total = tbl.count_rows()
    report.scalar_indices, report.vector_index = ensure_indices(tbl, report.rows_total, vector_index_min_rows)
    report.seconds_write = time.perf_counter() - t0
    lake.put(CURRENT_KEY, json.dumps({"table": name, "encoder": encoder.spec, "uri": location.uri},
                                     indent=1).encode())
    return report


def table_names(db: Any) -> list[str]:
    """Every table of the database: `db.table_names()` pages at 10 names, so with an eleventh
    encoder's table a day's re-index would miss its table and fail to create it again."""
    return list(db.list_tables().tables)


def frame_tables(lake: Lake, location: IndexLocation | None = None) -> list[Any]:
    """Every encoder's frames table, the current one first, then the newer before the older: a day
    indexed under an earlier production model stays in that model's table (a release does not
    re-embed history), so a question about any frame (which day is it from?) asks them all."""
    current = read_current(lake)
    if current is None:
        raise LookupError("the depot has no index yet: ingest and index a day first")
    db = (location or IndexLocation.for_lake(lake)).connect()
    others = sorted((n for n in table_names(db) if n.startswith("frames_") and n != current["table"]),
                    reverse=True)
    return [db.open_table(n) for n in [current["table"], *others]]


def depot_days(lake: Lake) -> list[str]:
    """Capture days with a Depot frames table, newest first."""
    days = {i.key.split("date=", 1)[1].split("/", 1)[0] for i in lake.list(FRAMES)
            if i.key.endswith("/part.parquet") and "date=" in i.key}
    return sorted(days, reverse=True)


def reindex_days(lake: Lake, spec: dict[str, Any], location: IndexLocation | None = None,
                 limit: int = 7) -> list[str]:
    """Up to `limit` days, newest first, indexed under an earlier encoder but not yet in the table
    of the encoder `spec` names: a release moves the encoder, and search, the grouping of backlog
    frames and the audit read history through the current one. A day in no table at all is being
    ingested (its own run indexes it), so it is not one of them."""
    db = (location or IndexLocation.for_lake(lake)).connect()
    names = table_names(db)
    target = "frames_" + encoder_id(spec)
    current = db.open_table(target) if target in names else None
    others = [db.open_table(n) for n in sorted(names, reverse=True)
              if n.startswith("frames_") and n != target]
    out: list[str] = []
    for day in depot_days(lake):
        where = f"date = {_sql_str(day)}"
        if current is not None and current.count_rows(where):
            continue
        if any(t.count_rows(where) for t in others):
            out.append(day)
            if len(out) >= limit:
                break
    return out


def open_table(lake: Lake, location: IndexLocation | None = None) -> tuple[Any, dict[str, Any]]:
    """(LanceDB table, encoder spec) of the current index."""
    current = read_current(lake)
    if current is None:
        raise LookupError("the depot has no index yet: ingest and index a day first")
    location = location or IndexLocation.for_lake(lake)
    return location.connect().open_table(current["table"]), current["encoder"]


def jpeg_of(lake: Lake, frame: dict[str, Any]) -> bytes:
    """The full-resolution JPEG of one frame row (from the day's Parquet)."""
    import pyarrow.compute as pc

    t = read_frames(lake, frame["date"], columns=["frame_id", "image_jpeg"])
    if t is None:
        raise LookupError(f"no frames for {frame['date']}")
    hit = t.filter(pc.equal(t.column("frame_id"), frame["frame_id"]))
    if not hit.num_rows:
        raise LookupError(f"frame {frame['frame_id']} not found")
    return hit.column("image_jpeg")[0].as_py()
