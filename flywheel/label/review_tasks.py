"""Review tasks on the lake: the routes and tasks tables, and the exports annotation tools import.

    label/review/date=D/routes.parquet       one row per kept frame: its route and task
    label/review/date=D/backlog.parquet      earlier days' deferred frames this run routed
                                             (flywheel.label.backlog)
    label/review/date=D/tasks.parquet        one row per task (a near-duplicate group)
    label/review/date=D/label_studio.json    Label Studio tasks with `predictions` (the annotator
                                             corrects the proposed SKU instead of picking one)
    label/review/date=D/label_studio.xml     the labelling config those tasks expect
    label/review/date=D/coco.json            COCO (images, categories, proposed annotations)
    label/review/date=D/yolo.zip             YOLO (data.yaml, images/, labels/)
    label/review/images/date=D/<frame>.jpg   the leader frame of each task (what the tools show)

Labels are SKU classifications: a box is the whole frame unless a human drew one (carried by the
merged labels' exports, see flywheel.label.merge).
"""

from __future__ import annotations

import io
import json
import zipfile
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any
from xml.sax.saxutils import quoteattr

from edge_agent.contract.layout import validate_date
from edge_agent.lake import Lake, ObjectNotFound
from flywheel.label.routing import Routing, Task, task_day

REVIEW = "label/review"
BACKLOG_FILE = "backlog.parquet"  # what a run took from earlier days (flywheel.label.backlog)
NO_PRODUCT = "none"  # the Label Studio choice for "no product in this frame" (a `reject`)
FROM_NAME, TO_NAME = "sku", "image"


def review_key(day: str, name: str) -> str:
    return f"{REVIEW}/date={validate_date(day)}/{name}"


def image_key(day: str, frame_id: str) -> str:
    return f"{REVIEW}/images/date={validate_date(day)}/{frame_id}.jpg"


def routes_schema():  # noqa: ANN201 - pyarrow imported lazily
    import pyarrow as pa

    return pa.schema([("frame_id", pa.string()), ("route", pa.string()), ("task_id", pa.string()),
                      ("label", pa.string()), ("confidence", pa.float64()), ("reason", pa.string())])


def tasks_schema():  # noqa: ANN201
    import pyarrow as pa

    return pa.schema([("task_id", pa.string()), ("kind", pa.string()), ("reason", pa.string()),
                      ("frame_ids", pa.list_(pa.string())), ("proposed_label", pa.string()),
                      ("confidence", pa.float64()), ("est_seconds", pa.float64()), ("rank", pa.int32()),
                      ("candidates", pa.list_(pa.string())), ("draw_box", pa.bool_())])


def _put_parquet(lake: Lake, key: str, rows: list[dict[str, Any]], schema: Any) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    sink = pa.BufferOutputStream()
    pq.write_table(pa.Table.from_pylist(rows, schema=schema), sink, compression="zstd")
    lake.put(key, memoryview(sink.getvalue()))


def _get_parquet(lake: Lake, key: str, schema: Any) -> list[dict[str, Any]]:
    import pyarrow as pa
    import pyarrow.parquet as pq

    try:
        return pq.read_table(pa.BufferReader(lake.get(key))).to_pylist()
    except ObjectNotFound:
        return []


def backlog_schema():  # noqa: ANN201 - pyarrow imported lazily
    import pyarrow as pa

    return pa.schema([("frame_id", pa.string()), ("origin_day", pa.string()), ("route", pa.string()),
                      ("task_id", pa.string()), ("reason", pa.string()),
                      ("deferred_reason", pa.string()), ("review_day", pa.string()),
                      ("review_run", pa.string())])


def read_backlog(lake: Lake, day: str) -> list[dict[str, Any]]:
    return _get_parquet(lake, review_key(day, BACKLOG_FILE), backlog_schema())


def backlog_provenance(lake: Lake, day: str, task_ids: Mapping[str, str | None]
                       ) -> dict[str, dict[str, Any]]:
    """frame -> its backlog record, for frames of `day` answered in a task of another day's run
    (`task_ids`: frame -> the task its merged human label answers)."""
    cache: dict[str, dict[str, dict[str, Any]]] = {}
    out = {}
    for fid, task in task_ids.items():
        other = task_day(task or "")
        if other is None or other == day:
            continue
        if other not in cache:
            cache[other] = {r["frame_id"]: r for r in read_backlog(lake, other)}
        rec = cache[other].get(fid)
        out[fid] = rec or {"review_day": other, "review_run": None, "deferred_reason": None}
    return out


def read_routes(lake: Lake, day: str) -> list[dict[str, Any]]:
    return _get_parquet(lake, review_key(day, "routes.parquet"), routes_schema())


def read_tasks(lake: Lake, day: str) -> list[Task]:
    return [Task(**{**r, "candidates": r.get("candidates") or [], "draw_box": bool(r.get("draw_box"))})
            for r in _get_parquet(lake, review_key(day, "tasks.parquet"), tasks_schema())]


def label_config(catalog: list[str]) -> str:
    """The Label Studio labelling config: one image, one single-choice SKU list (+ no product)."""
    choices = "\n".join(f"    <Choice value={quoteattr(s)}/>" for s in [*sorted(catalog), NO_PRODUCT])
    return (f'<View>\n  <Image name="{TO_NAME}" value="$image"/>\n'
            f'  <Choices name="{FROM_NAME}" toName="{TO_NAME}" choice="single" showInline="false">\n'
            f"{choices}\n  </Choices>\n"
            f'  <Rectangle name="box" toName="{TO_NAME}"/>\n</View>\n')  # optional: a box around the item


def label_studio_tasks(day: str, tasks: list[Task], image_url: dict[str, str],
                       model_version: str) -> list[dict[str, Any]]:
    """Label Studio import format: `data` (image + our ids) and `predictions` with the proposal."""
    out = []
    for t in tasks:
        lead = t.frame_ids[0]
        item: dict[str, Any] = {
            "data": {"image": image_url[lead], "task_id": t.task_id, "frame_ids": t.frame_ids,
                     "date": day, "kind": t.kind, "reason": t.reason, "rank": t.rank,
                     "candidates": t.candidates, "draw_box": t.draw_box},
        }
        if t.proposed_label is not None:
            item["predictions"] = [{
                "model_version": model_version,
                "score": t.confidence if t.confidence is not None else 0.0,
                "result": [{"id": "p0", "from_name": FROM_NAME, "to_name": TO_NAME, "type": "choices",
                            "value": {"choices": [t.proposed_label]}}],
            }]
        out.append(item)
    return out


@dataclass(frozen=True)
class ExportItem:
    """One image of a COCO/YOLO export: its label, and a box when a human drew one."""

    frame_id: str
    label: str | None
    score: float | None = None
    box: list[float] | None = None  # x1, y1, x2, y2 pixels; None = the whole frame
    extra: dict[str, Any] = field(default_factory=dict)  # provenance, carried into COCO


def task_items(tasks: list[Task]) -> list[ExportItem]:
    """The task leaders with their proposals (the whole frame: no box proposed)."""
    return [ExportItem(t.frame_ids[0], t.proposed_label, t.confidence,
                       extra={"task_id": t.task_id, "frame_ids": t.frame_ids}) for t in tasks]


def _xyxy(item: ExportItem, w: int, h: int) -> tuple[float, float, float, float]:
    if item.box is None:
        return 0.0, 0.0, float(w), float(h)
    x1, y1, x2, y2 = (float(v) for v in item.box)
    return max(0.0, x1), max(0.0, y1), min(float(w), x2), min(float(h), y2)


def coco_export(items: list[ExportItem], sizes: dict[str, tuple[int, int]], catalog: list[str],
                description: str = "flywheel review tasks (proposed labels)") -> dict[str, Any]:
    """COCO detection JSON: one image per item, its label as an annotation on the drawn box, else
    the whole frame; the item's provenance rides along on image and annotation."""
    cats = {s: i + 1 for i, s in enumerate(sorted(catalog))}
    images, anns = [], []
    for i, it in enumerate(items, start=1):
        w, h = sizes[it.frame_id]
        images.append({"id": i, "file_name": f"images/{it.frame_id}.jpg", "width": w, "height": h,
                       **it.extra})
        if it.label in cats:
            x1, y1, x2, y2 = _xyxy(it, w, h)
            anns.append({"id": len(anns) + 1, "image_id": i, "category_id": cats[it.label],
                         "bbox": [x1, y1, x2 - x1, y2 - y1], "area": (x2 - x1) * (y2 - y1), "iscrowd": 0,
                         "score": it.score if it.score is not None else 0.0,
                         "box_source": "human" if it.box is not None else "whole_frame", **it.extra})
    return {"info": {"description": description}, "images": images, "annotations": anns,
            "categories": [{"id": i, "name": s, "supercategory": "sku"} for s, i in cats.items()]}


def yolo_zip(items: list[ExportItem], jpegs: dict[str, bytes], catalog: list[str],
             sizes: dict[str, tuple[int, int]] | None = None) -> bytes:
    """YOLO layout in one zip: data.yaml, images/<frame>.jpg, labels/<frame>.txt (class cx cy w h,
    normalised; the drawn box, else the whole frame; no line without a label)."""
    names = sorted(catalog)
    cls = {s: i for i, s in enumerate(names)}
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_STORED) as z:
        yaml = "path: .\ntrain: images\nval: images\nnames:\n" + "".join(
            f"  {i}: '{s}'\n" for i, s in enumerate(names))
        z.writestr("data.yaml", yaml)
        for it in items:
            z.writestr(f"images/{it.frame_id}.jpg", jpegs[it.frame_id])
            line = ""
            if it.label in cls:
                cx, cy, bw, bh = 0.5, 0.5, 1.0, 1.0
                if it.box is not None and sizes is not None:
                    w, h = sizes[it.frame_id]
                    x1, y1, x2, y2 = _xyxy(it, w, h)
                    cx, cy, bw, bh = (x1 + x2) / 2 / w, (y1 + y2) / 2 / h, (x2 - x1) / w, (y2 - y1) / h
                line = f"{cls[it.label]} {cx:.6f} {cy:.6f} {bw:.6f} {bh:.6f}\n"
            z.writestr(f"labels/{it.frame_id}.txt", line)
    return buf.getvalue()


def write_review(lake: Lake, day: str, routing: Routing, frames: Any, catalog: list[str],
                 model_version: str = "prelabel-ensemble") -> dict[str, str]:
    """Write routes, tasks, leader images and the three exports; returns name -> lake key.
    `frames`: the Depot frames (pyarrow) of at least the task leaders (frame_id, width, height,
    image_jpeg)."""
    _put_parquet(lake, review_key(day, "routes.parquet"), routing.routes, routes_schema())
    _put_parquet(lake, review_key(day, "tasks.parquet"),
                 [vars(t) for t in routing.tasks], tasks_schema())
    leaders = {t.frame_ids[0] for t in routing.tasks}
    ids = frames.column("frame_id").to_pylist()
    at = {f: i for i, f in enumerate(ids)}
    missing = leaders - set(at)
    if missing:
        raise LookupError(f"{len(missing)} task frame(s) are not in the Depot's frames of {day}, "
                          f"e.g. {sorted(missing)[0]}")
    jpeg_col, w_col, h_col = (frames.column(c) for c in ("image_jpeg", "width", "height"))
    jpegs = {f: jpeg_col[at[f]].as_py() for f in leaders}
    sizes = {f: (int(w_col[at[f]].as_py()), int(h_col[at[f]].as_py())) for f in leaders}
    urls = {}
    for f in sorted(leaders):
        key = image_key(day, f)
        lake.put(key, jpegs[f])
        urls[f] = lake.url(key)
    keys = {"routes": review_key(day, "routes.parquet"), "tasks": review_key(day, "tasks.parquet"),
            "label_studio": review_key(day, "label_studio.json"),
            "label_studio_config": review_key(day, "label_studio.xml"),
            "coco": review_key(day, "coco.json"), "yolo": review_key(day, "yolo.zip")}
    ls = label_studio_tasks(day, routing.tasks, urls, model_version)
    lake.put(keys["label_studio"], json.dumps(ls, indent=1).encode())
    lake.put(keys["label_studio_config"], label_config(catalog).encode())
    items = task_items(routing.tasks)
    lake.put(keys["coco"], json.dumps(coco_export(items, sizes, catalog)).encode())
    lake.put(keys["yolo"], yolo_zip(items, jpegs, catalog, sizes))
    return keys


def catalog_of(lake: Lake, prelabels: list[dict[str, Any]]) -> list[str]:
    """The Depot's catalog SKUs; without an imported catalog, the labels proposed so far."""
    from flywheel.learner.errors import DatasetError
    from flywheel.learner.reference_sets import catalog_skus

    try:
        return sorted(catalog_skus(lake))
    except (ObjectNotFound, LookupError, KeyError, DatasetError):
        return sorted({r["label"] for r in prelabels if r.get("label")})
