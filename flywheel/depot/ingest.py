"""Ingest one capture day: validate, quarantine, decode, sample, measure, write Parquet.

The day's landing prefix is the source of truth; the output `depot/frames/date=D/part.parquet`
holds one row per sampled frame, with its JPEG and a thumbnail JPEG inside the row (no object per
frame: on S3 each put is a round trip). A run keeps the rows of clips already ingested (no decode twice)
and adds the clips that became complete, sorted by frame id, so re-running a day gives the same
rows and never duplicates. Bad clips are quarantined and reported; good ones still ingest.
"""

from __future__ import annotations

import bisect
import hashlib
import os
from collections import Counter, deque
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np

from edge_agent.contract.errors import ContractError
from edge_agent.contract.layout import CLIP_EXT, SIDECAR_EXT, parse_clip_key
from edge_agent.contract.schemas import ClipSidecar, parse_sidecar
from edge_agent.lake import Lake, LakeError, ObjectInfo, ObjectNotFound
from flywheel.depot import frames_table
from flywheel.depot import quarantine as q
from flywheel.depot.config import DepotConfig, frames_key
from flywheel.depot.embed import FrameEncoder, encoder_id
from flywheel.depot.frames import (
    DecodeError,
    VideoMismatch,
    VideoSpec,
    decode_sampled,
    sample_indices,
    to_jpeg,
)
from flywheel.depot.landing import day_objects, split_key
from flywheel.depot.ledger import (
    LedgerEntry,
    ingested_sidecar,
    read_ledger,
    sha256_hex,
    stamp,
    write_ledger,
)
from flywheel.depot.vectors import read_vectors, write_vectors

FRAME_COLUMNS = frames_table.NAMES  # the frames table's columns: defined once, in frames_table
EMBED_BATCH = 64  # frames per encoder forward pass (the encoders batch internally up to this)


@dataclass
class IngestReport:
    day: str
    clips_ingested: list[str] = field(default_factory=list)
    clips_already: int = 0  # ingested by an earlier run: kept, not decoded again
    pending: list[str] = field(default_factory=list)  # incomplete but younger than the timeout
    rejections: list[q.Rejection] = field(default_factory=list)  # one per quarantined object
    rejected_clips: int = 0  # clips (or stray objects) quarantined
    frames_decoded: int = 0
    frames_written: int = 0  # rows added by this run
    rows_total: int = 0  # rows in the day's Parquet after this run
    frames_key: str = ""

    @property
    def reject_rate(self) -> float:
        n = len(self.clips_ingested) + self.rejected_clips
        return self.rejected_clips / n if n else 0.0

    def reject_reasons(self) -> dict[str, int]:
        return dict(Counter(r.reason for r in self.rejections))

    def rejects_markdown(self, limit: int = 50) -> str:
        if not self.rejections:
            return "no rejects"
        lines = ["| key | reason | detail |", "|---|---|---|"]
        lines += [f"| `{r.key.rsplit('/', 1)[-1]}` | {r.reason} | {r.detail[:120].replace('|', '/')} |"
                  for r in self.rejections[:limit]]
        return "\n".join(lines)


class Reject(Exception):
    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(f"{reason}: {detail}")
        self.reason, self.detail = reason, detail


def _age_s(lake: Lake, key: str, now: datetime) -> float:
    try:
        return (now - lake.head(key).last_modified).total_seconds()
    except ObjectNotFound:
        return 0.0


def validate_clip(lake: Lake, stem: str, config: DepotConfig) -> tuple[ClipSidecar, bytes, bytes]:
    """The checks, cheapest first: key, size (head only), sidecar contract, bytes vs sidecar.
    Returns (sidecar, clip bytes, sidecar bytes)."""
    try:
        ck = parse_clip_key(stem + CLIP_EXT)
    except ContractError as e:
        raise Reject(q.BAD_KEY, str(e)) from None
    size = lake.head(stem + CLIP_EXT).size
    if size > config.max_clip_bytes:
        raise Reject(q.OVERSIZE, f"{size} bytes > limit {config.max_clip_bytes}")
    raw = lake.get(stem + SIDECAR_EXT)
    try:
        sc = parse_sidecar(raw)
    except ContractError as e:
        code = q.UNKNOWN_SCHEMA_VERSION if e.field in ("schema_version", "schema") else q.BAD_SIDECAR
        raise Reject(code, str(e)) from None
    expect = {"clip_id": ck.clip_id, "device_id": ck.device_id, "store_id": ck.store_id,
              "capture_date": ck.date}
    got = {"clip_id": sc.clip_id, "device_id": sc.device_id, "store_id": sc.store_id,
           "capture_date": sc.capture_date}
    if got != expect:
        bad = {k: got[k] for k in got if got[k] != expect[k]}
        raise Reject(q.SIDECAR_MISMATCH, f"sidecar disagrees with its key: {bad}")
    if size != sc.clip.size_bytes:
        raise Reject(q.SIZE_MISMATCH, f"clip is {size} bytes, sidecar says {sc.clip.size_bytes}")
    data = lake.get(stem + CLIP_EXT)
    sha = hashlib.sha256(data).hexdigest()
    if sha != sc.clip.sha256:
        raise Reject(q.SHA256_MISMATCH, f"clip sha256 {sha[:16]}..., sidecar says {sc.clip.sha256[:16]}...")
    return sc, data, raw


def _series_at(ts: list[float], values: list[Any], t: float) -> Any:
    """The last sample at or before t (what the device knew at that moment)."""
    if not ts:
        return None
    i = bisect.bisect_right(ts, t) - 1
    return values[max(i, 0)]


def clip_rows(sc: ClipSidecar, data: bytes, config: DepotConfig, clip_key: str, decode_threads: int = 0
              ) -> tuple[list[dict[str, Any]], list[np.ndarray], int]:
    """Rows for the sampled frames of one validated clip, plus their pixels (row order, for the
    encoder), and the number of frames decoded."""
    trigger_frames: dict[int, list[str]] = {}
    for t in sc.triggers:
        trigger_frames.setdefault(t.frame, []).append(t.rule)
    extra = set(trigger_frames) | {b.frame for b in sc.barcode_reads}
    wanted = sample_indices(sc.clip.frame_count, config.frame_every, extra)
    spec = VideoSpec(sc.clip.codec, sc.clip.width, sc.clip.height, sc.clip.frame_count)
    frames, decoded = decode_sampled(data, set(wanted), decode_threads, spec)  # stops past the count
    if decoded < sc.clip.frame_count:  # cut short: undecodable
        raise DecodeError(f"decoded {decoded} frames, sidecar says {sc.clip.frame_count}")
    w_ts = [s.t for s in sc.weight_series]
    w_g = [s.grams for s in sc.weight_series]
    l_ts = [s.t for s in sc.location_series]
    locs = [(s.aisle, s.x_m) for s in sc.location_series]
    weight_change = (w_g[-1] - w_g[0]) if len(w_g) >= 2 else 0.0
    barcode = sc.barcode_reads[0].text if sc.barcode_reads else None
    rules = ",".join(sorted({t.rule for t in sc.triggers}))
    rows = []
    for f in frames:  # decode order = the order of `wanted`
        i, rgb = f.index, f.rgb
        fp = sc.frames[i]
        loc = _series_at(l_ts, locs, fp.t) or (None, None)
        rows.append({
            "frame_id": f"{sc.clip_id}-{i:06d}",
            "clip_id": sc.clip_id, "frame_index": i, "t_s": fp.t,
            "captured_at": sc.started_at.astimezone(UTC) + timedelta(seconds=fp.t),
            "date": sc.capture_date, "store_id": sc.store_id, "device_id": sc.device_id,
            "model_version": sc.model_version, "rule_set_version": sc.rule_set_version,
            "agent_version": sc.agent_version, "is_trigger_frame": i in trigger_frames,
            "frame_triggers": ",".join(trigger_frames.get(i, [])), "triggers": rules,
            "barcode": barcode, "weight_g": _series_at(w_ts, w_g, fp.t),
            "weight_change_g": weight_change, "aisle": loc[0], "x_m": loc[1],
            "prediction": fp.prediction, "confidence": fp.confidence,
            "blur": round(f.blur, 4), "brightness": round(f.brightness, 4),
            "width": int(rgb.shape[1]), "height": int(rgb.shape[0]),
            "clip_key": clip_key, "clip_sha256": sc.clip.sha256,
            "thumb_jpeg": to_jpeg(rgb, config.thumb_quality, config.thumb_px),
            "image_jpeg": to_jpeg(rgb, config.jpeg_quality),
        })
    return rows, [f.rgb for f in frames], decoded


frames_schema = frames_table.arrow_schema
JPEG_COLUMNS = frames_table.JPEG_COLUMNS
METADATA_COLUMNS = frames_table.METADATA_COLUMNS


def read_frames(lake: Lake, day: str, columns: list[str] | None = None):  # noqa: ANN201
    """The day's frames table (pyarrow), or None when the day has no Parquet yet."""
    import pyarrow.parquet as pq

    try:
        raw = lake.get(frames_key(day))
    except ObjectNotFound:
        return None
    import pyarrow as pa

    return pq.read_table(pa.BufferReader(raw), columns=columns)  # zero-copy over the bytes


def write_frames(lake: Lake, day: str, rows: list[dict[str, Any]], existing: Any) -> int:
    import pyarrow as pa
    import pyarrow.parquet as pq

    schema = frames_schema()
    # one row per frame id (the first seen), in frame-id order: identical output however the day
    # was ingested. New rows are ordered as Python objects; the Arrow table (megabytes of JPEG) is
    # only reordered when it has to merge with rows already there.
    first: dict[str, dict[str, Any]] = {}
    for r in rows:
        first.setdefault(r["frame_id"], r)
    table = pa.Table.from_pylist([first[k] for k in sorted(first)], schema=schema)
    if existing is not None and existing.num_rows:
        table = pa.concat_tables([existing.select(schema.names).cast(schema), table])
        ids = table.column("frame_id").to_pylist()
        at: dict[str, int] = {}
        for i, fid in enumerate(ids):
            at.setdefault(fid, i)
        table = table.take(pa.array([at[k] for k in sorted(at)], pa.int64()))
    # JPEG bytes do not compress and are never looked up by value: zstd, dictionaries and min/max
    # statistics only for the metadata columns. An Arrow buffer, not BytesIO: no Python-level
    # writes (the GIL) and no regrowing copies of the JPEG megabytes.
    meta = [name for name in table.column_names if name not in JPEG_COLUMNS]
    codecs = {name: ("zstd" if name in meta else "none") for name in table.column_names}
    sink = pa.BufferOutputStream()
    pq.write_table(table, sink, compression=codecs, row_group_size=2048, use_dictionary=meta,
                   write_statistics=meta)
    lake.put(frames_key(day), memoryview(sink.getvalue()))
    return table.num_rows


def _process(lake: Lake, stem: str, exts: set[str], config: DepotConfig, now: datetime,
             decode_threads: int = 0) -> tuple[str, Any]:
    """One clip, start to finish (runs in a worker thread: PyAV and OpenCV release the GIL).
    Returns ("pending", None), ("reject", Reject) or ("ok", (sidecar, rows, decoded, pixels, raw)).

    Whatever goes wrong with one clip rejects that clip only, with the exception in words; only a
    failing store (LakeError) fails the run, to be retried: a good clip must not be quarantined
    because the network blinked."""
    keys = [stem + e for e in sorted(exts)]
    try:
        if "" in exts:
            raise Reject(q.BAD_KEY, "not a .mp4 clip or .json sidecar")
        try:
            parse_clip_key(keys[0])
        except ContractError as e:
            raise Reject(q.BAD_KEY, str(e)) from None
        if exts != {CLIP_EXT, SIDECAR_EXT}:
            (only,) = exts
            if _age_s(lake, keys[0], now) < config.pending_timeout_s:
                return "pending", None
            code = q.CLIP_WITHOUT_SIDECAR if only == CLIP_EXT else q.SIDECAR_WITHOUT_CLIP
            raise Reject(code, f"no {'sidecar' if only == CLIP_EXT else 'clip'} after "
                               f"{config.pending_timeout_s:.0f} s")
        sc, data, raw = validate_clip(lake, stem, config)
        try:
            rows, pixels, decoded = clip_rows(sc, data, config, stem + CLIP_EXT, decode_threads)
        except VideoMismatch as e:
            raise Reject(q.VIDEO_MISMATCH, str(e)) from None
        except DecodeError as e:
            raise Reject(q.UNDECODABLE, str(e)) from None
    except Reject as r:
        return "reject", r
    except LakeError:
        raise
    except Exception as e:  # noqa: BLE001 - one clip never fails its day
        return "reject", Reject(q.INTERNAL_ERROR, f"{type(e).__name__}: {str(e)[:500]}")
    return "ok", (sc, rows, decoded, pixels, raw)


def _already(lake: Lake, stem: str, parts: dict[str, ObjectInfo], done_key: str,
             entry: LedgerEntry | None) -> tuple[str, str, str | None] | None:
    """None when a clip whose id is ingested is still what was ingested; else (reason, detail, the
    one extension to quarantine or None for all parts)."""
    if done_key != stem + CLIP_EXT:
        return q.DUPLICATE_CLIP, f"the same clip bytes were already ingested from {done_key}", None
    side = parts.get(SIDECAR_EXT)
    if entry is None or side is None or stamp(side) == entry.sidecar_stamp:
        return None  # ingested before the ledger existed, sidecar gone, or listed unchanged
    try:
        sha = sha256_hex(lake.get(stem + SIDECAR_EXT))
    except ObjectNotFound:
        return None  # gone since the listing: nothing to compare
    if sha == entry.sidecar_sha256:
        return None  # rewritten with the same bytes
    return (q.SIDECAR_CONFLICT, f"sidecar replaced after ingest (ingested sha256 "
                                f"{entry.sidecar_sha256[:16]}..., now {sha[:16]}...); both versions kept",
            SIDECAR_EXT)


def _in_order(pool: Any, fn: Callable[[Any], Any], items: Iterable[Any], ahead: int) -> Iterator[Any]:
    """pool.map with at most `ahead` items in flight: results in input order, and a slow consumer
    (the encoder) never leaves a whole day's decoded pixels waiting in memory."""
    window: deque = deque()
    for item in items:
        window.append(pool.submit(fn, item))
        if len(window) >= ahead:
            yield window.popleft().result()
    while window:
        yield window.popleft().result()


def ingest_day(lake: Lake, day: str, config: DepotConfig | None = None, *,
               now: datetime | None = None, workers: int | None = None,
               encoder: FrameEncoder | None = None) -> IngestReport:
    """Ingest every complete, not yet ingested clip of `day`; quarantine the bad ones.

    With an `encoder`, the sampled frames are embedded here, from the pixels already decoded, in
    batches of EMBED_BATCH frames (in this thread, while the workers decode the next clips), and
    stored for the indexer."""
    from concurrent.futures import ThreadPoolExecutor

    config = config or DepotConfig()
    now = now or datetime.now(UTC)
    report = IngestReport(day=day, frames_key=frames_key(day))
    existing = read_frames(lake, day, columns=["clip_id", "clip_key"])
    done: dict[str, str] = {}  # clip id -> the clip key it was ingested from
    if existing is not None:
        done = dict(zip(existing.column("clip_id").to_pylist(), existing.column("clip_key").to_pylist(),
                        strict=True))
    ledger = read_ledger(lake, day)
    stems: dict[str, dict[str, ObjectInfo]] = {}
    todo: list[tuple[str, set[str]]] = []
    for info in day_objects(lake, day):
        stem, ext = split_key(info.key)
        if ext:
            stems.setdefault(stem, {})[ext] = info
        else:  # junk is its own item: an object named like a clip must not drag the clip down
            todo.append((info.key, {""}))
    for stem, parts in sorted(stems.items()):
        clip_id = stem.rsplit("/", 1)[-1]
        if clip_id not in done:
            todo.append((stem, set(parts)))
            continue
        conflict = _already(lake, stem, parts, done[clip_id], ledger.get(clip_id))
        if conflict is None:
            report.clips_already += 1
            continue
        reason, detail, only = conflict
        report.rejected_clips += 1
        for ext in [only] if only else sorted(parts):
            report.rejections.append(_quarantine_version(lake, day, stem + ext, reason, detail, now))
    todo.sort(key=lambda item: item[0])  # key order: reports and rows come out the same every run
    workers = workers or min(4, os.cpu_count() or 1)
    rows: list[dict[str, Any]] = []
    vectors: dict[str, np.ndarray] = {}
    queued_ids: list[str] = []
    queued_px: list[np.ndarray] = []
    ingested: dict[str, str] = {}  # clip id -> key, this run
    new_entries: dict[str, LedgerEntry] = {}
    new_sidecars: dict[str, bytes] = {}

    def embed(flush: bool) -> None:
        while len(queued_px) >= EMBED_BATCH or (flush and queued_px):
            k = min(EMBED_BATCH, len(queued_px))
            vectors.update(zip(queued_ids[:k], encoder.encode_images(queued_px[:k]), strict=True))
            del queued_ids[:k], queued_px[:k]

    with ThreadPoolExecutor(max_workers=workers) as pool:
        # clips decode in parallel already: more codec threads per clip would only oversubscribe
        threads = 1 if workers > 1 else 0
        results = _in_order(pool, lambda t: _process(lake, t[0], t[1], config, now, threads), todo,
                            2 * workers)
        for (stem, exts), (status, value) in zip(todo, results, strict=True):  # in key order
            if status == "ok" and value[0].clip_id in ingested:  # two keys, the same clip bytes
                status, value = "reject", Reject(q.DUPLICATE_CLIP, "the same clip bytes were already "
                                                 f"ingested from {ingested[value[0].clip_id]}")
            if status == "pending":
                report.pending.append(stem)
            elif status == "reject":
                report.rejected_clips += 1
                for key in (stem + e for e in sorted(exts)):
                    report.rejections.append(q.quarantine(lake, key, value.reason, value.detail, now=now))
            else:
                sc, clip_out, decoded, pixels, raw = value
                ingested[sc.clip_id] = stem + CLIP_EXT
                side = stems.get(stem, {}).get(SIDECAR_EXT)
                new_entries[sc.clip_id] = LedgerEntry(
                    clip_key=stem + CLIP_EXT, clip_sha256=sc.clip.sha256, sidecar_sha256=sha256_hex(raw),
                    sidecar_stamp=stamp(side))
                new_sidecars[sc.clip_id] = raw
                if encoder is not None:
                    queued_ids.extend(r["frame_id"] for r in clip_out)
                    queued_px.extend(pixels)
                    embed(flush=False)
                rows.extend(clip_out)
                report.clips_ingested.append(sc.clip_id)
                report.frames_decoded += decoded
    if encoder is not None:
        embed(flush=True)
    report.frames_written = len(rows)
    if rows:  # another run of this day may have written meanwhile: merge with what is there now
        existing = read_frames(lake, day)
    if vectors:
        enc_id = encoder_id(encoder.spec)
        write_vectors(lake, enc_id, day, {**read_vectors(lake, enc_id, day), **vectors})
    if rows or existing is None:
        report.rows_total = write_frames(lake, day, rows, existing)
    else:
        report.rows_total = existing.num_rows
    if new_entries:  # after the frames: a crash between leaves clips that read as ingested before
        write_ledger(lake, day, {**ledger, **new_entries}, new_sidecars)  # the ledger (never twice)
    return report


def _quarantine_version(lake: Lake, day: str, key: str, reason: str, detail: str, now: datetime
                        ) -> q.Rejection:
    """Quarantine one version of an object that conflicts with what was ingested, keeping the
    ingested sidecar beside it; versions are told apart by content, so none overwrites another."""
    tag = sha256_hex(lake.get(key))[:12]
    rej = q.quarantine(lake, key, reason, detail, now=now, tag=tag)
    ingested = ingested_sidecar(lake, day, key.rsplit("/", 1)[-1][: -len(SIDECAR_EXT)]) \
        if key.endswith(SIDECAR_EXT) else None
    if ingested is not None:
        lake.put(rej.quarantine_key + ".ingested.json", ingested)
    return rej
