"""Human corrections arriving in `landing/corrections/`: validate, quarantine or file them per day.

A batch is a `CorrectionBatchV1` document (the contract) or a Label Studio JSON export (a list of
tasks with `annotations`, as our `label_studio.json` tasks come back), converted to the same form.
Each accepted batch is archived under `label/corrections/batches/<batch_id>.json` and split by
capture day into `label/corrections/date=D/<batch_id>.json`, which is what `merged_labels` reads;
then it leaves the landing zone. So `landing/corrections/` only ever holds unprocessed batches and a
tick lists O(new). A malformed or foreign batch (unknown frames) is quarantined with its reason
(depot/quarantine/corrections/...); the other batches still go through. Re-delivering the same
batch is harmless; reusing a batch id for different content is quarantined.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from edge_agent.contract.errors import ContractError
from edge_agent.contract.layout import LANDING_CORRECTIONS, validate_date
from edge_agent.contract.schemas import Correction, CorrectionBatchV1, dump_document, parse_correction_batch
from edge_agent.lake import Lake, ObjectNotFound
from flywheel.depot.quarantine import Rejection, quarantine
from flywheel.label.review_tasks import NO_PRODUCT

CORRECTIONS = "label/corrections"
LABEL_STUDIO_TOOL = "label-studio"
# Reason codes of the corrections quarantine.
BAD_BATCH = "bad_batch"  # not JSON, not a correction batch, or fails the contract
UNKNOWN_SCHEMA_VERSION = "unknown_schema_version"
FOREIGN_FRAMES = "foreign_frames"  # frames the Depot never ingested
BATCH_ID_REUSED = "batch_id_reused"  # a known batch id with different content

FrameDays = Callable[[list[str]], dict[str, str]]  # frame ids -> capture day (unknown ones absent)


def day_batch_key(day: str, batch_id: str) -> str:
    return f"{CORRECTIONS}/date={validate_date(day)}/{batch_id}.json"


def archive_key(batch_id: str) -> str:
    return f"{CORRECTIONS}/batches/{batch_id}.json"


@dataclass
class CorrectionScan:
    accepted: list[str] = field(default_factory=list)  # batch ids
    days: dict[str, list[str]] = field(default_factory=dict)  # day -> batch ids touching it
    rejections: list[Rejection] = field(default_factory=list)
    corrections: int = 0


class BadBatch(Exception):
    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(f"{reason}: {detail}")
        self.reason, self.detail = reason, detail


def _safe_id(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "-", text).strip("-.")[:64] or "unknown"


def from_label_studio(export: list[Any], key: str, *, exported_at: datetime | None = None
                      ) -> CorrectionBatchV1:
    """A Label Studio JSON export of our review tasks as one correction batch (one correction per
    frame of each task's near-duplicate group, per submitted annotation)."""
    corrections = []
    for task in export:
        data = task.get("data") or {}
        frame_ids = data.get("frame_ids") or []
        proposed = None
        for p in task.get("predictions") or []:
            for r in p.get("result") or []:
                proposed = ((r.get("value") or {}).get("choices") or [None])[0]
        for ann in task.get("annotations") or []:
            if ann.get("was_cancelled"):
                continue
            choice, box = None, None
            for r in ann.get("result") or []:
                if r.get("type") == "choices":
                    choice = ((r.get("value") or {}).get("choices") or [None])[0]
                elif r.get("type") in ("rectangle", "rectanglelabels"):
                    box = ls_box(r)
            if choice is None and box is None:
                continue  # skipped or empty: no answer
            who = ann.get("completed_by")
            who = who.get("email") or who.get("id") if isinstance(who, dict) else who
            when = ann.get("updated_at") or ann.get("created_at")
            sku = None if choice in (None, NO_PRODUCT) else choice
            action = "reject" if sku is None else ("confirm" if sku == proposed else "relabel")
            if choice is None:
                action = "set_box"  # a box drawn, the proposal kept
            for fid in frame_ids:
                corrections.append({
                    "frame_id": fid, "action": action, "sku": sku, "box": box,
                    "previous_sku": None if proposed == NO_PRODUCT else proposed,
                    "annotator": f"ls-{_safe_id(str(who))}", "corrected_at": when,
                    "note": f"task {data.get('task_id', '')} annotation {ann.get('id', '')} "
                            f"(label-studio task {task.get('id', '')})"})
    if not corrections:
        raise BadBatch(BAD_BATCH, "Label Studio export without any submitted annotation of our tasks")
    digest = hashlib.sha256(json.dumps(export, sort_keys=True).encode()).hexdigest()[:16]
    doc = {"schema": "flywheel.correction_batch", "schema_version": 1,
           "batch_id": f"ls-{digest}", "tool": LABEL_STUDIO_TOOL,
           "exported_at": (exported_at or datetime.now(UTC)).isoformat(), "corrections": corrections}
    try:
        return parse_correction_batch(doc)
    except ContractError as e:
        raise BadBatch(BAD_BATCH, f"{key}: {e}") from None


def ls_box(result: dict[str, Any]) -> list[float] | None:
    """A Label Studio rectangle (x, y, width, height in percent of the original image) as
    [x1, y1, x2, y2] pixels; None without the image size or for an empty rectangle."""
    v = result.get("value") or {}
    w, h = result.get("original_width"), result.get("original_height")
    try:
        x1, y1 = float(v["x"]) * w / 100, float(v["y"]) * h / 100
        x2, y2 = x1 + float(v["width"]) * w / 100, y1 + float(v["height"]) * h / 100
    except (KeyError, TypeError, ValueError):
        return None
    return [round(x1, 2), round(y1, 2), round(x2, 2), round(y2, 2)] if x2 > x1 and y2 > y1 else None


def parse_batch(raw: bytes, key: str) -> CorrectionBatchV1:
    try:
        doc = json.loads(raw)
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise BadBatch(BAD_BATCH, f"not valid JSON: {e}") from None
    if isinstance(doc, list):
        return from_label_studio(doc, key)
    try:
        return parse_correction_batch(doc)
    except ContractError as e:
        code = UNKNOWN_SCHEMA_VERSION if e.field == "schema_version" else BAD_BATCH
        raise BadBatch(code, str(e)) from None


def split_by_day(batch: CorrectionBatchV1, frame_days: FrameDays) -> dict[str, CorrectionBatchV1]:
    ids = sorted({c.frame_id for c in batch.corrections})
    days = frame_days(ids)
    unknown = [f for f in ids if f not in days]
    if unknown:
        raise BadBatch(FOREIGN_FRAMES, f"{len(unknown)} of {len(ids)} frame(s) unknown to the Depot, "
                                       f"e.g. {unknown[0]}")
    out: dict[str, list[Correction]] = {}
    for c in batch.corrections:
        out.setdefault(days[c.frame_id], []).append(c)
    return {d: batch.model_copy(update={"corrections": cs}) for d, cs in sorted(out.items())}


def process_batch(lake: Lake, key: str, frame_days: FrameDays) -> tuple[CorrectionBatchV1, list[str]]:
    """Validate one landed batch and file it per day; returns (batch, days). Raises BadBatch."""
    batch = parse_batch(lake.get(key), key)
    per_day = split_by_day(batch, frame_days)
    canonical = dump_document(batch)
    try:
        if lake.get(archive_key(batch.batch_id)) != canonical:
            raise BadBatch(BATCH_ID_REUSED, f"batch id {batch.batch_id} was already used for other content")
    except ObjectNotFound:
        pass
    for day, part in per_day.items():
        lake.put(day_batch_key(day, batch.batch_id), dump_document(part))
    lake.put(archive_key(batch.batch_id), canonical)  # last: its presence means "filed"
    return batch, list(per_day)


def scan_corrections(lake: Lake, frame_days: FrameDays, limit: int = 500) -> CorrectionScan:
    """Process what waits in landing/corrections/ (at most `limit` batches per call)."""
    scan = CorrectionScan()
    for info in lake.list(LANDING_CORRECTIONS, limit=limit):
        key = info.key
        try:
            batch, days = process_batch(lake, key, frame_days)
        except BadBatch as b:
            scan.rejections.append(quarantine(lake, key, b.reason, b.detail))
            continue
        except ObjectNotFound:
            continue  # taken by a concurrent tick
        scan.accepted.append(batch.batch_id)
        scan.corrections += len(batch.corrections)
        for d in days:
            scan.days.setdefault(d, []).append(batch.batch_id)
        lake.delete(key)
    return scan


def read_day_batches(lake: Lake, day: str) -> list[CorrectionBatchV1]:
    """The accepted batches filed for `day`, in batch-id order."""
    out = []
    for info in lake.list(f"{CORRECTIONS}/date={validate_date(day)}"):
        out.append(parse_correction_batch(lake.get(info.key)))
    return sorted(out, key=lambda b: b.batch_id)


def index_frame_days(tables: Sequence[Any]) -> FrameDays:
    """Frame -> capture day from the Depot's LanceDB index (scalar index on frame_id), looked up in
    each table in turn (index.frame_tables: the current encoder's, then earlier ones) until every
    frame is found: a review run files backlog frames of days indexed under an earlier model."""
    from flywheel.depot.index import _sql_str

    def lookup(frame_ids: list[str]) -> dict[str, str]:
        out: dict[str, str] = {}
        for table in tables:
            missing = [f for f in frame_ids if f not in out]
            for i in range(0, len(missing), 500):
                chunk = missing[i:i + 500]
                where = f"frame_id IN ({', '.join(_sql_str(f) for f in chunk)})"
                rows = table.search().where(where).select(["frame_id", "date"]).limit(len(chunk)).to_list()
                out.update({r["frame_id"]: r["date"] for r in rows})
            if len(out) == len(set(frame_ids)):
                break
        return out

    return lookup


def batch_doc(batch_id: str, tool: str, corrections: Iterable[dict[str, Any]],
              exported_at: datetime | None = None) -> bytes:
    """A CorrectionBatchV1 document as a tool integration writes it (validated on the way)."""
    doc = CorrectionBatchV1.model_validate({
        "schema": "flywheel.correction_batch", "schema_version": 1, "batch_id": batch_id,
        "tool": tool, "exported_at": exported_at or datetime.now(UTC), "corrections": list(corrections)})
    return dump_document(doc)
