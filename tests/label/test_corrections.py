"""Corrections landing on a real S3 lake (SeaweedFS): filed per day, bad batches quarantined with
their reason, the rest merged; Label Studio exports converted; re-delivery harmless."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import pytest

from edge_agent.contract.layout import corrections_key
from flywheel.label.corrections import (
    BAD_BATCH,
    BATCH_ID_REUSED,
    FOREIGN_FRAMES,
    UNKNOWN_SCHEMA_VERSION,
    archive_key,
    batch_doc,
    day_batch_key,
    read_day_batches,
    scan_corrections,
)
from flywheel.label.merge import merge_day

A, B = "4006381333931", "5012345678900"
T0 = datetime(2026, 11, 24, 12, 0, tzinfo=UTC)
DAYS = {"clip1-000001": "2026-11-24", "clip1-000009": "2026-11-24", "clip2-000003": "2026-11-25"}


def known(frame_ids: list[str]) -> dict[str, str]:
    return {f: DAYS[f] for f in frame_ids if f in DAYS}


def corr(fid: str, sku: str | None = B, **kw) -> dict:
    return {"frame_id": fid, "action": "relabel" if sku else "reject", "sku": sku, "previous_sku": A,
            "annotator": "ann-1", "corrected_at": T0, **kw}


def label_studio_export() -> list[dict]:
    return [{"id": 7, "data": {"image": "s3://x/y.jpg", "task_id": "review-20261124-aa", "date": "2026-11-24",
                               "frame_ids": ["clip1-000001", "clip1-000009"]},
             "predictions": [{"model_version": "v", "score": 0.4,
                              "result": [{"from_name": "sku", "to_name": "image", "type": "choices",
                                          "value": {"choices": [A]}}]}],
             "annotations": [{"id": 31, "completed_by": {"id": 1, "email": "ann@example.com"},
                              "updated_at": "2026-11-24T13:00:00Z", "was_cancelled": False,
                              "result": [{"from_name": "sku", "to_name": "image", "type": "choices",
                                          "value": {"choices": [B]}}]}]}]


@pytest.mark.integration
def test_batches_are_filed_per_day_and_bad_ones_quarantined(s3_lake) -> None:
    lake = s3_lake
    good = batch_doc("good", "cvat", [corr("clip1-000001"), corr("clip2-000003", None)], exported_at=T0)
    lake.put(corrections_key("good"), good)
    lake.put(corrections_key("broken"), b"{not json")
    lake.put(corrections_key("foreign"),
             batch_doc("foreign", "cvat", [corr("clip1-000001"), corr("nope-000001")]))
    future = json.loads(batch_doc("future", "cvat", [corr("clip1-000009")]))
    future["schema_version"] = 9
    lake.put(corrections_key("future"), json.dumps(future).encode())
    lake.put(corrections_key("ls-export"), json.dumps(label_studio_export()).encode())

    scan = scan_corrections(lake, known)
    assert sorted(scan.accepted)[0] == "good" and len(scan.accepted) == 2
    reasons = {r.key.rsplit("/", 1)[-1]: r.reason for r in scan.rejections}
    assert reasons == {"broken.json": BAD_BATCH, "foreign.json": FOREIGN_FRAMES,
                       "future.json": UNKNOWN_SCHEMA_VERSION}
    for r in scan.rejections:  # quarantined with the reason beside it, landing emptied
        assert lake.exists(r.quarantine_key)
        assert json.loads(lake.get(r.quarantine_key + ".reason.json"))["reason"] == r.reason
    assert list(lake.list("landing/corrections")) == []
    assert sorted(scan.days) == ["2026-11-24", "2026-11-25"] and scan.corrections == 4
    assert lake.exists(day_batch_key("2026-11-25", "good")) and lake.exists(archive_key("good"))

    day = read_day_batches(lake, "2026-11-24")
    tools = sorted(b.tool for b in day)
    assert tools == ["cvat", "label-studio"]
    (ls,) = [b for b in day if b.tool == "label-studio"]
    assert [(c.frame_id, c.sku, c.previous_sku, c.annotator) for c in ls.corrections] == [
        ("clip1-000001", B, A, "ls-ann-example.com"), ("clip1-000009", B, A, "ls-ann-example.com")]
    assert "task review-20261124-aa" in ls.corrections[0].note

    # the same batch again: harmless; the same id with other content: quarantined
    lake.put(corrections_key("good"), good)
    lake.put(corrections_key("good2"), batch_doc("good", "cvat", [corr("clip1-000009")]))
    again = scan_corrections(lake, known)
    assert {r.reason for r in again.rejections} == {BATCH_ID_REUSED}
    assert again.accepted == ["good"]
    # the merge sees both tools: clip1-000001 has two humans agreeing (cvat, then Label Studio)
    routes = [{"frame_id": f, "route": "review", "task_id": "review-20261124-aa", "label": A,
               "confidence": 0.4}
              for f in ("clip1-000001", "clip1-000009")]
    res = merge_day(routes, read_day_batches(lake, "2026-11-24"))
    assert [(r["frame_id"], r["label"], r["tool"]) for r in res.rows] == [
        ("clip1-000001", B, "label-studio"), ("clip1-000009", B, "label-studio")]
    assert res.rows[0]["task_id"] == "review-20261124-aa" and res.conflicts == []


@pytest.mark.integration
def test_frames_of_days_indexed_under_an_earlier_model_are_not_foreign(tmp_path) -> None:
    """After a release the index moves to the new production model's table and history stays in
    the old ones (12 of them here: LanceDB pages table names at 10); a review batch that answers
    backlog frames of an earlier day is filed to that day, not quarantined as foreign."""
    import lancedb

    from edge_agent.lake import Lake
    from flywheel.depot.index import CURRENT_KEY, frame_tables, table_names
    from flywheel.label.corrections import index_frame_days

    lake = Lake.at_path(tmp_path / "lake")
    db = lancedb.connect(str(lake.local_path("depot/index")))
    names = [f"frames_model_cls_{i:02d}" for i in range(12)]
    for i, name in enumerate(names):  # model i indexed day i (2026-11-01 ...)
        db.create_table(name, data=[{"frame_id": f"clip{i}-000001", "date": f"2026-11-{i + 1:02d}"},
                                    {"frame_id": f"clip{i}-000009", "date": f"2026-11-{i + 1:02d}"}])
    db.create_table("search_notes", data=[{"frame_id": "clip0-000001", "date": "1999-01-01"}])  # not frames
    lake.put(CURRENT_KEY, json.dumps({"table": names[-1], "encoder": {}, "uri": ""}).encode())
    assert len(table_names(db)) == 13

    tables = frame_tables(lake)
    assert [t.name for t in tables] == [names[-1], *reversed(names[:-1])]
    days = index_frame_days(tables)(["clip11-000001", "clip0-000009", "clip3-000001", "nope-000001"])
    assert days == {"clip11-000001": "2026-11-12", "clip0-000009": "2026-11-01", "clip3-000001": "2026-11-04"}

    mixed = batch_doc("mixed", "cvat", [corr("clip11-000001"), corr("clip0-000009")])
    lake.put(corrections_key("mixed"), mixed)
    scan = scan_corrections(lake, index_frame_days(tables))
    assert scan.accepted == ["mixed"] and not scan.rejections
    assert sorted(scan.days) == ["2026-11-01", "2026-11-12"]
