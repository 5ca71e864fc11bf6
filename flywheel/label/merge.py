"""Merge auto-accepted pre-labels and human corrections into one label per frame, with provenance.

Rules (per frame):
- a human label beats an auto label;
- a later human label beats an earlier one when it was given knowing it: same annotator (changed
  their mind), or its `previous_sku` is the label it replaces (a reviewer corrected it);
- two humans who disagree independently send the frame back to the queue (a `conflict`: no merged
  label until a later human, shown one of the disputed labels, settles it);
- a human label that the frame itself rules out (`routing.contradiction`: a barcode decoded on the
  frame, the load cell's candidates) is held back as a conflict, not merged, until an answer given
  in a conflict task settles it (the annotator's slips stay out of the dataset);
- a frame routed `review`/`deferred` without a human answer has no merged label yet.
Inputs are read whole and the output is sorted, so re-running gives the same table.

    label/merged/date=D/merged.parquet     frame_id, label, source, confidence, annotator, tool,
                                           task_id, annotation_id, corrected_at, previous_label, route,
                                           box, box_annotator, box_annotation_id (a drawn box and
                                           the answer that drew it), review_day, review_run,
                                           deferred_reason (a deferred frame answered in a later
                                           day's run: flywheel.label.backlog)
    label/merged/date=D/conflicts.parquet  frame_id, labels (JSON), latest_label, reason (humans
                                           disagree / human vs barcode / human vs load cell)
    label/merged/date=D/frames.parquet     labelled-frame rows in the Learner's dataset columns, and
                                           box_source / label_source (the empty filter's hints)
    label/merged/date=D/coco.json, yolo.zip the merged labels as COCO and YOLO (a drawn box, else the
                                           whole frame; provenance in the COCO annotations)
"""

from __future__ import annotations

import io
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from edge_agent.contract.layout import validate_date
from edge_agent.contract.schemas import CorrectionBatchV1
from edge_agent.lake import Lake, ObjectNotFound
from flywheel.label.filter_hints import EMPTIES_PER_BOX, FilterHints, pick_empties, pixel_box, read_hints
from flywheel.label.routing import (
    AUDIT,
    AUTO,
    CONFLICT,
    HUMANS_DISAGREE,
    contradiction,
    second_look,
    wilson_interval,
)
from flywheel.refs import LabelsRef, ref_for

MERGED = "label/merged"
AUTO_TOOL = "prelabel-ensemble"
TASK_NOTE = re.compile(r"\btask ([A-Za-z0-9._-]+)")
TOOL_ANNOTATION = re.compile(r"\bannotation (\d+)\b")  # the tool's own annotation id (Label Studio)


def merged_key(day: str, name: str = "merged.parquet") -> str:
    return f"{MERGED}/date={validate_date(day)}/{name}"


@dataclass(frozen=True)
class HumanLabel:
    frame_id: str
    label: str | None  # SKU, or None = no product in the frame (a `reject`)
    action: str
    annotator: str
    tool: str
    batch_id: str
    annotation_id: str  # <batch_id>:<position in the batch>
    corrected_at: datetime
    previous_label: str | None  # what the annotator was shown
    task_id: str | None = None  # from the correction's note ("task <id>"), as our tools write it
    box: tuple[float, float, float, float] | None = None  # x1, y1, x2, y2 pixels, when one was drawn


@dataclass
class Resolution:
    winner: HumanLabel | None
    conflict: bool
    labels: list[HumanLabel]


@dataclass
class MergeResult:
    rows: list[dict[str, Any]]
    conflicts: list[dict[str, Any]]
    counts: dict[str, int] = field(default_factory=dict)
    audit: dict[str, float] = field(default_factory=dict)  # n, errors, rate, ci_low, ci_high


def task_of(note: str) -> str | None:
    m = TASK_NOTE.search(note or "")
    return m.group(1) if m else None


def human_labels(batches: list[CorrectionBatchV1], auto_label: dict[str, str | None]
                 ) -> dict[str, list[HumanLabel]]:
    """Per frame, the human answers in time order. A `confirm` without a SKU confirms what was shown
    (its previous_sku, else the frame's pre-label); `set_box` keeps the label it was shown."""
    out: dict[str, list[HumanLabel]] = {}
    for b in batches:
        for i, c in enumerate(b.corrections):
            shown = c.previous_sku if c.previous_sku is not None else auto_label.get(c.frame_id)
            if c.action == "reject":
                label = None
            elif c.action == "relabel":
                label = c.sku
            else:
                label = c.sku if c.sku is not None else shown
            out.setdefault(c.frame_id, []).append(HumanLabel(
                frame_id=c.frame_id, label=label, action=c.action, annotator=c.annotator, tool=b.tool,
                batch_id=b.batch_id, corrected_at=c.corrected_at,
                annotation_id=f"{b.tool}:{m.group(1)}" if (m := TOOL_ANNOTATION.search(c.note or ""))
                else f"{b.batch_id}:{i}",
                previous_label=c.previous_sku, task_id=task_of(c.note),
                box=tuple(c.box) if c.box is not None else None))
    for labels in out.values():
        labels.sort(key=lambda h: (h.corrected_at, h.batch_id, h.annotation_id))
    return out


def is_adjudication(h: HumanLabel) -> bool:
    return h.task_id is not None and h.task_id.startswith(CONFLICT + "-")


def resolve(labels: list[HumanLabel], auto_label: str | None = None) -> Resolution:
    """Apply the human-vs-human rules to one frame's answers (time order)."""
    current: HumanLabel | None = None
    disputed = False
    for h in labels:
        if current is None:
            current = h
        elif is_adjudication(h):
            current, disputed = h, False  # answered in a conflict task: shown the dispute
        elif disputed:
            continue  # a further independent answer does not settle a dispute
        elif (h.label == current.label or h.annotator == current.annotator
              or (h.previous_label == current.label and current.label != auto_label)):
            current = h  # agreement, a change of mind, or a correction of the human label it was shown
        else:
            disputed = True
    if disputed:
        return Resolution(winner=None, conflict=True, labels=labels)
    return Resolution(winner=current, conflict=False, labels=labels)


def box_of(res: Resolution) -> HumanLabel | None:
    """The answer whose box the merged label carries: the latest box drawn for the winning label
    (a box drawn around another product than the one that won does not describe it)."""
    if res.winner is None or res.winner.label is None:
        return None
    boxed = [h for h in res.labels if h.box is not None and h.label == res.winner.label]
    return boxed[-1] if boxed else None


def merge_day(routes: list[dict[str, Any]], batches: list[CorrectionBatchV1],
              prelabels: Mapping[str, Mapping[str, Any]] | None = None) -> MergeResult:
    """Merge one day: `routes` from the review queue (frame_id, route, task_id, label, confidence);
    `prelabels`: frame -> its pre-label row (votes), to hold back human labels the frame rules out."""
    by_frame = {r["frame_id"]: r for r in routes}
    auto_label = {f: r.get("label") for f, r in by_frame.items()}
    humans = human_labels(batches, auto_label)
    prelabels = prelabels or {}
    rows, conflicts = [], []
    counts = {"auto": 0, "human": 0, "conflicts": 0, "pending": 0, "human_changed": 0, "held": 0}
    audited = audit_errors = 0
    for fid in sorted(set(by_frame) | set(humans)):
        route = by_frame.get(fid, {})
        if fid in humans:
            res = resolve(humans[fid], route.get("label"))
            if res.conflict:
                counts["conflicts"] += 1
                conflicts.append({"frame_id": fid, "latest_label": res.labels[-1].label,
                                  "labels": json.dumps([[h.annotator, h.label] for h in res.labels]),
                                  "reason": HUMANS_DISAGREE})
                continue
            h = res.winner
            assert h is not None
            why = None if is_adjudication(h) else contradiction(prelabels.get(fid, {}), h.label)
            if why:  # one more look (a conflict task) before it is merged
                counts["held"] += 1
                conflicts.append({"frame_id": fid, "latest_label": h.label, "reason": second_look(why),
                                  "labels": json.dumps([[x.annotator, x.label] for x in res.labels])})
                continue
            prev = route.get("label") if len(res.labels) == 1 else res.labels[-2].label
            b = box_of(res)
            rows.append({"frame_id": fid, "label": h.label, "source": "human", "confidence": 1.0,
                         "annotator": h.annotator, "tool": h.tool,
                         "task_id": h.task_id or route.get("task_id"),
                         "annotation_id": h.annotation_id, "corrected_at": h.corrected_at,
                         "previous_label": prev, "route": route.get("route"),
                         "box": list(b.box) if b else None, "box_annotator": b.annotator if b else None,
                         "box_annotation_id": b.annotation_id if b else None})
            counts["human"] += 1
            counts["human_changed"] += h.label != route.get("label")
            # audited: routed to audit now, or answered in an audit task of an earlier iteration
            if route.get("route") == AUDIT or (h.task_id or "").startswith(AUDIT + "-"):
                audited += 1
                audit_errors += h.label != route.get("label")
        elif route.get("route") in (AUTO, AUDIT) and route.get("label") is not None:
            rows.append({"frame_id": fid, "label": route["label"], "source": "auto",
                         "confidence": route.get("confidence"), "annotator": None, "tool": AUTO_TOOL,
                         "task_id": route.get("task_id"), "annotation_id": None, "corrected_at": None,
                         "previous_label": None, "route": route.get("route"), "box": None,
                         "box_annotator": None, "box_annotation_id": None})
            counts["auto"] += 1
        else:
            counts["pending"] += 1
    rate, low, high = wilson_interval(audit_errors, audited)
    return MergeResult(rows=rows, conflicts=conflicts, counts=counts,
                       audit={"n": audited, "errors": audit_errors, "rate": rate, "ci_low": low,
                              "ci_high": high})


def merged_schema():  # noqa: ANN201 - pyarrow imported lazily
    import pyarrow as pa

    return pa.schema([
        ("frame_id", pa.string()), ("label", pa.string()), ("source", pa.string()),
        ("confidence", pa.float64()), ("annotator", pa.string()), ("tool", pa.string()),
        ("task_id", pa.string()), ("annotation_id", pa.string()),
        ("corrected_at", pa.timestamp("us", tz="UTC")), ("previous_label", pa.string()),
        ("route", pa.string()),
        ("box", pa.list_(pa.float64())),  # x1, y1, x2, y2 pixels a human drew; null = the whole frame
        ("box_annotator", pa.string()), ("box_annotation_id", pa.string()),  # who drew it, which answer
        # a frame its own day deferred, answered in a later day's run (flywheel.label.backlog):
        # that run's day and Dagster run id, and why its day deferred it; null otherwise
        ("review_day", pa.string()), ("review_run", pa.string()), ("deferred_reason", pa.string())])


def conflicts_schema():  # noqa: ANN201
    import pyarrow as pa

    return pa.schema([("frame_id", pa.string()), ("latest_label", pa.string()), ("labels", pa.string()),
                      ("reason", pa.string())])  # why it is back in the queue, shown on its task


def _put(lake: Lake, key: str, table: Any) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    sink = pa.BufferOutputStream()
    pq.write_table(table, sink, compression="zstd")
    lake.put(key, memoryview(sink.getvalue()))


def _get(lake: Lake, key: str, schema: Any) -> Any:
    import pyarrow as pa
    import pyarrow.parquet as pq

    try:
        return pq.read_table(pa.BufferReader(lake.get(key)))
    except ObjectNotFound:
        return schema.empty_table()


def write_merged(lake: Lake, day: str, result: MergeResult, batch_ids: list[str] | None = None) -> None:
    """merged.parquet, conflicts.parquet and summary.json (counts, audit estimate, batches merged)."""
    import pyarrow as pa

    _put(lake, merged_key(day), pa.Table.from_pylist(result.rows, schema=merged_schema()))
    _put(lake, merged_key(day, "conflicts.parquet"),
         pa.Table.from_pylist(result.conflicts, schema=conflicts_schema()))
    lake.put(merged_key(day, "summary.json"), json.dumps(
        {"counts": result.counts, "audit": result.audit, "batches": sorted(batch_ids or [])},
        indent=1, sort_keys=True).encode())


def read_merged(lake: Lake, day: str) -> Any:
    return _get(lake, merged_key(day), merged_schema())


def read_conflicts(lake: Lake, day: str) -> tuple[dict[str, str | None], dict[str, str]]:
    """(frame -> the label a conflict task proposes, frame -> why the frame is back in the queue);
    a table written before the reason column reads as humans disagreeing."""
    t = _get(lake, merged_key(day, "conflicts.parquet"), conflicts_schema())
    ids = t.column("frame_id").to_pylist()
    reasons = t.column("reason").to_pylist() if "reason" in t.column_names else [None] * len(ids)
    return (dict(zip(ids, t.column("latest_label").to_pylist(), strict=True)),
            {f: r or HUMANS_DISAGREE for f, r in zip(ids, reasons, strict=True)})


def read_summary(lake: Lake, day: str) -> dict[str, Any] | None:
    """Counts and audit estimate of the day's last merge (summary.json), or None before one."""
    try:
        return json.loads(lake.get(merged_key(day, "summary.json")))
    except ObjectNotFound:
        return None


def _png(jpeg: bytes) -> bytes:
    from PIL import Image

    buf = io.BytesIO()
    Image.open(io.BytesIO(jpeg)).convert("RGB").save(buf, format="PNG", compress_level=3)
    return buf.getvalue()


def write_labelled_frames(lake: Lake, day: str, merged: Any, frames: Any | None,
                          hints: FilterHints | None = None) -> tuple[int, dict[str, int]]:
    """The merged labels joined with the Depot's frames, in the simulator export's columns (what
    the Learner's dataset builder reads). Session = the clip: near-duplicate frames of one capture
    stay on one side of the train/val split. A `None` label from a human = an empty frame. With the
    filter's `hints` (flywheel.label.filter_hints): an item frame nobody drew a box on takes its
    foreground box, and clean empties join, as many as the boxed item frames. Returns (rows, counts
    of foreground boxes and filter empties used)."""
    import pyarrow as pa

    hints = hints or FilterHints()
    labels = dict(zip(merged.column("frame_id").to_pylist(), merged.column("label").to_pylist(), strict=True))
    boxes = dict(zip(merged.column("frame_id").to_pylist(), merged.column("box").to_pylist(), strict=True)
                 ) if "box" in merged.column_names else {}
    rows: list[dict[str, Any]] = []
    ids = frames.column("frame_id").to_pylist() if frames is not None else []
    cols = {c: frames.column(c).to_pylist() for c in ("clip_id", "device_id", "store_id", "width", "height")
            } if frames is not None else {}
    jpeg = frames.column("image_jpeg") if frames is not None else None
    counts = {"foreground_boxes": 0, "filter_empties": 0}

    def row(i: int, fid: str, sku: str | None, box: list[float] | None, box_source: str | None,
            label_source: str = "merged") -> dict[str, Any]:
        return {"frame_id": fid, "session_id": cols["clip_id"][i], "device_id": cols["device_id"][i],
                "store": cols["store_id"][i], "distribution": "production", "sku": sku,
                "is_empty": sku is None, "item_box": box, "hand_box": None, "conditions": "{}",
                "image_png": _png(jpeg[i].as_py()), "width": cols["width"][i], "height": cols["height"][i],
                "box_source": box_source, "label_source": label_source}

    for i, fid in enumerate(ids):
        if fid not in labels:
            continue
        sku, box = labels[fid], boxes.get(fid)
        source = "human" if box is not None else None
        if box is None and sku is not None and fid in hints.boxes:
            box = pixel_box(hints.boxes[fid], int(cols["width"][i]), int(cols["height"][i]))
            source = "filter"
            counts["foreground_boxes"] += 1
        rows.append(row(i, fid, sku, box, source))
    boxed = sum(1 for r in rows if r["item_box"] is not None)
    at = {f: i for i, f in enumerate(ids)}
    for fid in pick_empties([f for f in hints.empties if f in at and f not in labels],
                            round(EMPTIES_PER_BOX * boxed)):
        rows.append(row(at[fid], fid, None, None, None, "filter"))
        counts["filter_empties"] += 1
    schema = pa.schema([
        ("frame_id", pa.string()), ("session_id", pa.string()), ("device_id", pa.string()),
        ("store", pa.string()), ("distribution", pa.string()), ("sku", pa.string()),
        ("is_empty", pa.bool_()), ("item_box", pa.list_(pa.float32())), ("hand_box", pa.list_(pa.float32())),
        ("conditions", pa.string()), ("image_png", pa.binary()), ("width", pa.int32()),
        ("height", pa.int32()),
        # provenance of what the merged labels do not hold: a box "human" (drawn) or "filter" (the
        # empty filter's foreground box); a label "merged" or "filter" (a clean empty it dropped)
        ("box_source", pa.string()), ("label_source", pa.string())])
    _put(lake, merged_key(day, "frames.parquet"), pa.Table.from_pylist(rows, schema=schema))
    return len(rows), counts


def merge_labels_day(lake: Lake, day: str, detector_hints: bool = True) -> tuple[MergeResult, list[str], int]:
    """Merge the day's routes and filed corrections, write merged/conflicts/summary and the
    labelled frames (with the empty filter's boxes and clean empties unless `detector_hints` is
    off); returns (result, batch ids merged, labelled frames written)."""
    from flywheel.depot.ingest import read_frames
    from flywheel.label.corrections import read_day_batches
    from flywheel.label.review_tasks import backlog_provenance, read_routes
    from flywheel.label.tables import read_prelabels

    batches = read_day_batches(lake, day)
    pre = read_prelabels(lake, day, columns=["frame_id", "votes"]).to_pylist()
    prelabels = {r["frame_id"]: r for r in pre}
    result = merge_day(read_routes(lake, day), batches, prelabels)
    late = backlog_provenance(lake, day, {r["frame_id"]: r["task_id"] for r in result.rows
                                      if r["source"] == "human"})
    for r in result.rows:
        if r["frame_id"] in late:
            p = late[r["frame_id"]]
            r.update(review_day=p["review_day"], review_run=p["review_run"],
                     deferred_reason=p["deferred_reason"])
    ids = [b.batch_id for b in batches]
    write_merged(lake, day, result, ids)
    frames = read_frames(lake, day, columns=["frame_id", "clip_id", "device_id", "store_id", "width",
                                              "height", "image_jpeg"])
    merged = read_merged(lake, day)
    write_exports(lake, day, merged, frames)
    n, hinted = write_labelled_frames(lake, day, merged, frames,
                                      read_hints(lake, day) if detector_hints else None)
    result.counts.update(hinted)
    return result, ids, n


def write_exports(lake: Lake, day: str, merged: Any, frames: Any | None) -> None:
    """The merged labels as COCO (label/merged/date=D/coco.json) and YOLO (yolo.zip): a human's box
    where one was drawn, else the whole frame; each COCO annotation names its source, annotator,
    tool, task and answer (and who drew the box)."""
    from flywheel.label.review_tasks import ExportItem, catalog_of, coco_export, yolo_zip

    if frames is None:
        return
    at = {f: i for i, f in enumerate(frames.column("frame_id").to_pylist())}
    keep = ("source", "annotator", "tool", "task_id", "annotation_id", "box_annotator", "box_annotation_id")
    items = [ExportItem(r["frame_id"], r["label"], r["confidence"], r.get("box"),
                        {k: r.get(k) for k in keep if r.get(k) is not None})
             for r in merged.to_pylist() if r["frame_id"] in at]
    jpeg, w, h = (frames.column(c) for c in ("image_jpeg", "width", "height"))
    sizes = {it.frame_id: (int(w[at[it.frame_id]].as_py()), int(h[at[it.frame_id]].as_py())) for it in items}
    catalog = catalog_of(lake, [{"label": it.label} for it in items])
    lake.put(merged_key(day, "coco.json"), json.dumps(
        coco_export(items, sizes, catalog, "flywheel merged labels"), default=str).encode())
    lake.put(merged_key(day, "yolo.zip"), yolo_zip(
        items, {it.frame_id: jpeg[at[it.frame_id]].as_py() for it in items}, catalog, sizes))


def labels_ref(lake: Lake, day: str, rows: int) -> LabelsRef:
    """The reference merged_labels hands to dataset_version: the day's labelled frames as written."""
    return ref_for(lake, LabelsRef, merged_key(day, "frames.parquet"), day=day, rows=rows)
