"""Review tasks on the lake: the routes and tasks tables, and the exports annotation tools import.

    label/review/date=D/routes.parquet       one row per kept frame: its route and task
    label/review/date=D/tasks.parquet        one row per task (a near-duplicate group)
    label/review/date=D/label_studio.json    Label Studio tasks with `predictions` (the annotator
                                             corrects the proposed SKU instead of picking one)
    label/review/date=D/label_studio.xml     the labelling config those tasks expect
    label/review/date=D/coco.json            COCO (images, categories, proposed annotations)
    label/review/date=D/yolo.zip             YOLO (data.yaml, images/, labels/)
    label/review/images/date=D/<frame>.jpg   the leader frame of each task (what the tools show)

Labels are SKU classifications: a box is the whole frame unless a human set one.
"""

from __future__ import annotations

import io
import json
import zipfile
from typing import Any
from xml.sax.saxutils import quoteattr

from edge_agent.contract.layout import validate_date
from edge_agent.lake import Lake, ObjectNotFound
from flywheel.label.routing import Routing, Task

REVIEW = "label/review"
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
                      ("confidence", pa.float64()), ("est_seconds", pa.float64()), ("rank", pa.int32())])


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


def read_routes(lake: Lake, day: str) -> list[dict[str, Any]]:
    return _get_parquet(lake, review_key(day, "routes.parquet"), routes_schema())


def read_tasks(lake: Lake, day: str) -> list[Task]:
    return [Task(**r) for r in _get_parquet(lake, review_key(day, "tasks.parquet"), tasks_schema())]


def label_config(catalog: list[str]) -> str:
    """The Label Studio labelling config: one image, one single-choice SKU list (+ no product)."""
    choices = "\n".join(f"    <Choice value={quoteattr(s)}/>" for s in [*sorted(catalog), NO_PRODUCT])
    return (f'<View>\n  <Image name="{TO_NAME}" value="$image"/>\n'
            f'  <Choices name="{FROM_NAME}" toName="{TO_NAME}" choice="single" showInline="false">\n'
            f"{choices}\n  </Choices>\n</View>\n")


def label_studio_tasks(day: str, tasks: list[Task], image_url: dict[str, str],
                       model_version: str) -> list[dict[str, Any]]:
    """Label Studio import format: `data` (image + our ids) and `predictions` with the proposal."""
    out = []
    for t in tasks:
        lead = t.frame_ids[0]
        item: dict[str, Any] = {
            "data": {"image": image_url[lead], "task_id": t.task_id, "frame_ids": t.frame_ids,
                     "date": day, "kind": t.kind, "reason": t.reason, "rank": t.rank},
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


def coco_export(tasks: list[Task], sizes: dict[str, tuple[int, int]], catalog: list[str]) -> dict[str, Any]:
    """COCO detection JSON of the task leaders, the proposal as a whole-frame annotation."""
    cats = {s: i + 1 for i, s in enumerate(sorted(catalog))}
    images, anns = [], []
    for i, t in enumerate(tasks, start=1):
        lead = t.frame_ids[0]
        w, h = sizes[lead]
        images.append({"id": i, "file_name": f"images/{lead}.jpg", "width": w, "height": h,
                       "task_id": t.task_id, "frame_ids": t.frame_ids})
        if t.proposed_label in cats:
            anns.append({"id": len(anns) + 1, "image_id": i, "category_id": cats[t.proposed_label],
                         "bbox": [0, 0, w, h], "area": w * h, "iscrowd": 0,
                         "score": t.confidence if t.confidence is not None else 0.0})
    return {"info": {"description": "flywheel review tasks (proposed labels)"},
            "images": images, "annotations": anns,
            "categories": [{"id": i, "name": s, "supercategory": "sku"} for s, i in cats.items()]}


def yolo_zip(tasks: list[Task], jpegs: dict[str, bytes], catalog: list[str]) -> bytes:
    """YOLO layout in one zip: data.yaml, images/<frame>.jpg, labels/<frame>.txt (class cx cy w h,
    normalised; the whole frame; no line when there is no proposal)."""
    names = sorted(catalog)
    cls = {s: i for i, s in enumerate(names)}
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_STORED) as z:
        yaml = "path: .\ntrain: images\nval: images\nnames:\n" + "".join(
            f"  {i}: '{s}'\n" for i, s in enumerate(names))
        z.writestr("data.yaml", yaml)
        for t in tasks:
            lead = t.frame_ids[0]
            z.writestr(f"images/{lead}.jpg", jpegs[lead])
            line = f"{cls[t.proposed_label]} 0.5 0.5 1.0 1.0\n" if t.proposed_label in cls else ""
            z.writestr(f"labels/{lead}.txt", line)
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
    lake.put(keys["coco"], json.dumps(coco_export(routing.tasks, sizes, catalog)).encode())
    lake.put(keys["yolo"], yolo_zip(routing.tasks, jpegs, catalog))
    return keys


def catalog_of(lake: Lake, prelabels: list[dict[str, Any]]) -> list[str]:
    """The Depot's catalog SKUs; without an imported catalog, the labels proposed so far."""
    from flywheel.learner.reference_sets import catalog_skus

    try:
        return sorted(catalog_skus(lake))
    except (ObjectNotFound, LookupError, KeyError):
        return sorted({r["label"] for r in prelabels if r.get("label")})
