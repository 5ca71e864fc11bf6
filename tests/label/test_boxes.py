"""Boxes a human drew (Label Studio rectangles, CorrectionBatchV1 `box`) reach the merged labels, the
Learner's labelled frames and the COCO/YOLO exports, with who drew them."""

from __future__ import annotations

import io
import json
import zipfile
from datetime import UTC, datetime, timedelta

import pyarrow as pa
from PIL import Image

from edge_agent.contract.schemas import parse_correction_batch
from edge_agent.lake import Lake
from flywheel.label.corrections import batch_doc, from_label_studio
from flywheel.label.merge import (
    merge_day,
    merged_key,
    read_merged,
    write_exports,
    write_labelled_frames,
    write_merged,
)

A, B = "4006381333931", "5012345678900"
T0 = datetime(2026, 11, 24, 12, 0, tzinfo=UTC)
DAY = "2026-11-24"


def rect(x: float, y: float, w: float, h: float) -> dict:
    return {"from_name": "box", "to_name": "image", "type": "rectangle", "original_width": 320,
            "original_height": 240, "value": {"x": x, "y": y, "width": w, "height": h, "rotation": 0}}


def test_label_studio_rectangles_become_pixel_boxes() -> None:
    choice = {"from_name": "sku", "to_name": "image", "type": "choices", "value": {"choices": [B]}}
    export = [{"data": {"task_id": "review-1", "frame_ids": ["f1", "f2"]},
               "predictions": [{"result": [{**choice, "value": {"choices": [A]}}]}],
               "annotations": [{"id": 1, "completed_by": 4, "updated_at": "2026-11-24T13:00:00Z",
                                "result": [choice, rect(10, 25, 50, 50)]}]},
              {"data": {"task_id": "review-2", "frame_ids": ["f3"]},
               "predictions": [{"result": [{**choice, "value": {"choices": [A]}}]}],
               "annotations": [{"id": 2, "completed_by": 4, "updated_at": "2026-11-24T13:01:00Z",
                                "result": [rect(0, 0, 25, 100)]}]}]
    batch = from_label_studio(export, "k")
    got = [(c.frame_id, c.action, c.sku, c.box) for c in batch.corrections]
    assert got == [("f1", "relabel", B, [32.0, 60.0, 192.0, 180.0]),
                   ("f2", "relabel", B, [32.0, 60.0, 192.0, 180.0]),
                   ("f3", "set_box", None, [0.0, 0.0, 80.0, 240.0])]


def corrections() -> list:
    def c(fid: str, action: str, sku: str | None, who: str, minutes: int, box: list | None) -> dict:
        return {"frame_id": fid, "action": action, "sku": sku, "previous_sku": A, "annotator": who,
                "corrected_at": T0 + timedelta(minutes=minutes), "box": box, "note": "task review-1"}

    full = [c("f1", "relabel", B, "ann-1", 0, [1, 2, 30, 40]),
            c("f2", "confirm", None, "ann-1", 0, None),
            c("f2", "set_box", None, "ann-2", 5, [5, 5, 50, 60]),  # a box drawn later keeps the label
            c("f3", "relabel", B, "ann-1", 0, [1, 1, 9, 9]),
            c("f3", "relabel", A, "ann-1", 9, None)]  # changed their mind: the box was around B
    return [parse_correction_batch(batch_doc("b1", "label-studio", full, exported_at=T0))]


def test_merged_labels_carry_the_box_and_who_drew_it() -> None:
    routes = [{"frame_id": f, "route": "review", "task_id": "review-1", "label": A, "confidence": 0.5}
              for f in ("f1", "f2", "f3")] + [
             {"frame_id": "f4", "route": "auto", "task_id": None, "label": A, "confidence": 0.99}]
    by = {r["frame_id"]: r for r in merge_day(routes, corrections()).rows}
    assert (by["f1"]["label"], by["f1"]["box"], by["f1"]["box_annotator"]) == (B, [1, 2, 30, 40], "ann-1")
    assert (by["f2"]["label"], by["f2"]["box"], by["f2"]["box_annotator"]) == (A, [5, 5, 50, 60], "ann-2")
    assert by["f2"]["box_annotation_id"] == "b1:2"
    assert (by["f3"]["label"], by["f3"]["box"]) == (A, None)
    assert by["f4"]["source"] == "auto" and by["f4"]["box"] is None


def test_boxes_reach_the_labelled_frames_and_the_exports(tmp_path) -> None:
    lake = Lake.at_path(tmp_path)
    routes = [{"frame_id": f, "route": "review", "task_id": "review-1", "label": A, "confidence": 0.5}
              for f in ("f1", "f2", "f3")]
    write_merged(lake, DAY, merge_day(routes, corrections()))
    buf = io.BytesIO()
    Image.new("RGB", (320, 240), (90, 120, 60)).save(buf, format="JPEG")
    frames = pa.table({"frame_id": ["f1", "f2", "f3"], "clip_id": ["c"] * 3, "device_id": ["d"] * 3,
                       "store_id": ["s"] * 3, "width": [320] * 3, "height": [240] * 3,
                       "image_jpeg": [buf.getvalue()] * 3})
    merged = read_merged(lake, DAY)
    assert write_labelled_frames(lake, DAY, merged, frames) == (3, {"foreground_boxes": 0,
                                                                    "filter_empties": 0})
    import pyarrow.parquet as pq

    rows = {r["frame_id"]: r for r in pq.read_table(
        pa.BufferReader(lake.get(merged_key(DAY, "frames.parquet")))).to_pylist()}
    assert rows["f1"]["item_box"] == [1, 2, 30, 40] and rows["f1"]["sku"] == B
    write_exports(lake, DAY, merged, frames)
    coco = json.loads(lake.get(merged_key(DAY, "coco.json")))
    ann = {coco["images"][a["image_id"] - 1]["file_name"]: a for a in coco["annotations"]}
    f1 = ann["images/f1.jpg"]
    assert f1["bbox"] == [1, 2, 29, 38] and f1["box_source"] == "human" and f1["box_annotator"] == "ann-1"
    assert f1["annotator"] == "ann-1" and f1["tool"] == "label-studio" and f1["source"] == "human"
    assert ann["images/f2.jpg"]["bbox"] == [5, 5, 45, 55] and ann["images/f2.jpg"]["box_annotator"] == "ann-2"
    assert ann["images/f3.jpg"]["bbox"] == [0, 0, 320, 240]  # no box for its label: the whole frame
    z = zipfile.ZipFile(io.BytesIO(lake.get(merged_key(DAY, "yolo.zip"))))
    cls, *xywh = z.read("labels/f1.txt").decode().split()
    assert [round(float(v), 4) for v in xywh] == [round(15.5 / 320, 4), round(21 / 240, 4),
                                                  round(29 / 320, 4), round(38 / 240, 4)]
    assert z.read("labels/f3.txt").decode().split()[1:] == ["0.500000", "0.500000", "1.000000", "1.000000"]


def test_the_filter_boxes_unboxed_item_frames_and_adds_as_many_clean_empties(tmp_path) -> None:
    """A drawn box wins; an item frame nobody boxed takes the filter's foreground box (0..1 of the
    frame, in pixels here); a frame a human called empty stays unboxed; clean empties join, as many
    as the boxed item frames, never one already labelled."""
    from flywheel.label.filter_hints import FilterHints

    lake = Lake.at_path(tmp_path)
    ids = ["f1", "f2", "f3", "f4", "e1", "e2", "e3", "e4"]
    routes = [{"frame_id": f, "route": "review", "task_id": "review-1", "label": A, "confidence": 0.5}
              for f in ("f1", "f2", "f3")] + [
             {"frame_id": "f4", "route": "auto", "task_id": None, "label": A, "confidence": 0.99}]
    write_merged(lake, DAY, merge_day(routes, corrections()))
    buf = io.BytesIO()
    Image.new("RGB", (320, 240), (90, 120, 60)).save(buf, format="JPEG")
    n = len(ids)
    frames = pa.table({"frame_id": ids, "clip_id": ["c"] * n, "device_id": ["d"] * n, "store_id": ["s"] * n,
                       "width": [320] * n, "height": [240] * n, "image_jpeg": [buf.getvalue()] * n})
    hints = FilterHints(boxes={"f1": [0.0, 0.0, 0.5, 0.5], "f3": [0.25, 0.5, 0.5, 1.0], "e1": [0, 0, 1, 1]},
                        empties=["e1", "e2", "e3", "e4", "f4", "gone"])
    rows_n, counts = write_labelled_frames(lake, DAY, read_merged(lake, DAY), frames, hints)
    assert counts == {"foreground_boxes": 1, "filter_empties": 3}  # f3; f1, f2 drawn: 3 boxed items
    import pyarrow.parquet as pq

    rows = {r["frame_id"]: r for r in pq.read_table(
        pa.BufferReader(lake.get(merged_key(DAY, "frames.parquet")))).to_pylist()}
    assert rows_n == len(rows) == 7
    assert rows["f1"]["item_box"] == [1, 2, 30, 40]  # the human's box, not the filter's
    assert rows["f3"]["item_box"] == [80, 120, 160, 240] and rows["f4"]["item_box"] is None
    empties = [f for f, r in rows.items() if r["is_empty"]]
    assert len(empties) == 3 and set(empties) <= {"e1", "e2", "e3", "e4"}
    assert all(rows[f]["sku"] is None and rows[f]["item_box"] is None for f in empties)
    # provenance: whose box, whose label (the merged labels hold neither hint)
    assert [rows[f]["box_source"] for f in ("f1", "f3", "f4")] == ["human", "filter", None]
    assert {rows[f]["label_source"] for f in empties} == {"filter"}
    assert {rows[f]["label_source"] for f in ("f1", "f2", "f3", "f4")} == {"merged"}


def test_hints_come_from_the_candidates_and_an_older_table_gives_none(tmp_path) -> None:
    import pyarrow.parquet as pq

    from flywheel.label import tables
    from flywheel.label.filter_hints import read_hints

    lake = Lake.at_path(tmp_path)
    assert read_hints(lake, DAY).boxes == {}  # no candidates written yet
    base = {"clip_id": "c", "date": DAY, "store_id": "s", "device_id": "d", "frame_index": 0, "t_s": 0.0,
            "empty_score": 0.5, "reason": "r"}
    tables.write_candidates(lake, DAY, [
        {**base, "frame_id": "f1", "kept": True, "fg_box": [0.1, 0.2, 0.3, 0.4], "clean_empty": False},
        {**base, "frame_id": "e1", "kept": False, "fg_box": None, "clean_empty": True}])
    hints = read_hints(lake, DAY)
    assert hints.empties == ["e1"] and list(hints.boxes) == ["f1"]
    assert [round(v, 6) for v in hints.boxes["f1"]] == [0.1, 0.2, 0.3, 0.4]
    old = pq.read_table(pa.BufferReader(lake.get(tables.candidates_key(DAY)))).drop(["fg_box", "clean_empty"])
    sink = pa.BufferOutputStream()
    pq.write_table(old, sink)
    lake.put(tables.candidates_key(DAY), sink.getvalue().to_pybytes())
    assert read_hints(lake, DAY) == type(hints)()  # written before the filter recorded them
