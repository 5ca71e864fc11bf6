"""Ingest of a capture day: rows, idempotence, and the bad-input matrix (each case quarantined with
its reason while the healthy clips of the same partition still ingest)."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import numpy as np
import pytest

from flywheel.depot.config import DepotConfig, frames_key
from flywheel.depot.frames import decode_clip, from_image_bytes
from flywheel.depot.ingest import FRAME_COLUMNS, ingest_day, read_frames
from flywheel.depot.landing import day_of, why_unroutable
from tests.support.clips import build_clip, insertion_summary, land, land_clip, sidecar_with

DAY = "2026-11-24"
LATER = datetime.now(UTC) + timedelta(hours=2)  # "now" for the ingest: past every timeout


def test_ingest_writes_sampled_frames_with_metadata(local_lake) -> None:
    c = land_clip(local_lake, seed=1, product=3, trigger_frames=(5, 13), n_frames=24)
    report = ingest_day(local_lake, DAY, DepotConfig(frame_every=8))
    assert report.clips_ingested == [c.clip_id] and report.rejections == []
    t = read_frames(local_lake, DAY)
    assert t.column_names == FRAME_COLUMNS
    rows = t.to_pylist()
    assert [r["frame_index"] for r in rows] == [0, 5, 8, 13, 16]  # every 8th + the triggers
    by = {r["frame_index"]: r for r in rows}
    assert by[5]["is_trigger_frame"] and by[13]["frame_triggers"] == "all(motion,barcode)"
    assert not by[8]["is_trigger_frame"]
    r = by[16]
    assert (r["store_id"], r["device_id"], r["model_version"]) == ("store-a", "cart-001", "m-0001")
    assert r["barcode"] == "4012345678901" and r["prediction"] == "4012345678901"
    assert r["confidence"] == pytest.approx(0.9) and r["weight_change_g"] == pytest.approx(350.0)
    assert r["weight_g"] == pytest.approx(1550.0) and r["aisle"] == "A4"
    assert r["captured_at"] == c.sidecar.started_at + timedelta(seconds=2)
    assert r["blur"] > 0 and 0 < r["brightness"] < 255
    assert r["image_jpeg"][:2] == b"\xff\xd8" and r["thumb_jpeg"][:2] == b"\xff\xd8"
    full, thumb = from_image_bytes(r["image_jpeg"]), from_image_bytes(r["thumb_jpeg"])
    assert full.shape == (r["height"], r["width"], 3) and max(thumb.shape[:2]) == DepotConfig().thumb_px
    # the JPEG is the decoded frame (colours and range kept): close to the clip's own RGB frame
    rgb, _ = decode_clip(c.clip_bytes, {16})
    assert np.abs(full.astype(np.int16) - rgb[16]).mean() < 4
    assert not any(True for _ in local_lake.list("depot/thumbs/"))  # no object per frame at ingest


def test_blur_and_brightness_tell_frames_apart(local_lake) -> None:
    land_clip(local_lake, seed=2)
    land_clip(local_lake, seed=3, dark=True, device_id="cart-dark")
    ingest_day(local_lake, DAY)
    rows = read_frames(local_lake, DAY).to_pylist()
    dark = [r["brightness"] for r in rows if r["device_id"] == "cart-dark"]
    light = [r["brightness"] for r in rows if r["device_id"] == "cart-001"]
    assert max(dark) < min(light) / 2


def test_rerun_gives_the_same_rows_and_adds_only_new_clips(local_lake) -> None:
    land_clip(local_lake, seed=4)
    first = ingest_day(local_lake, DAY)
    before = local_lake.get(frames_key(DAY))
    again = ingest_day(local_lake, DAY)
    assert again.clips_ingested == [] and again.clips_already == 1
    assert local_lake.get(frames_key(DAY)) == before  # untouched: same rows, byte for byte
    land_clip(local_lake, seed=5, device_id="cart-002")
    third = ingest_day(local_lake, DAY)
    assert len(third.clips_ingested) == 1 and third.rows_total == 2 * first.rows_total
    ids = read_frames(local_lake, DAY, ["frame_id"]).column("frame_id").to_pylist()
    assert ids == sorted(set(ids))


def _reason(lake, key: str) -> dict:
    rest = key.removeprefix("landing/")
    return json.loads(lake.get(f"depot/quarantine/{rest}.reason.json"))


@pytest.mark.parametrize("backend", ["local", pytest.param("s3", marks=pytest.mark.integration)])
def test_bad_input_matrix_is_quarantined_and_healthy_clips_still_ingest(backend, request) -> None:
    lake = request.getfixturevalue("s3_lake" if backend == "s3" else "local_lake")
    good = [land_clip(lake, seed=10, device_id="cart-good1"),
            land_clip(lake, seed=11, device_id="cart-good2")]
    # 1. truncated MP4 whose sidecar describes exactly those bytes (so only decoding can tell)
    full = build_clip(seed=12, device_id="cart-trunc")
    cut = full.clip_bytes[: len(full.clip_bytes) // 3]
    trunc = build_clip_from_bytes(full, cut)
    land(lake, trunc)
    # 2. sha256 mismatch: same size, one byte flipped
    sha = build_clip(seed=13, device_id="cart-sha")
    flipped = bytearray(sha.clip_bytes)
    flipped[len(flipped) // 2] ^= 0xFF
    land(lake, sha, clip_bytes=bytes(flipped))
    # 3. sidecar without clip; 4. clip without sidecar (both old enough to be past the timeout)
    orphan_sc = land(lake, build_clip(seed=14, device_id="cart-nosc"), clip_part=False)
    orphan_clip = land(lake, build_clip(seed=15, device_id="cart-noclip"), sidecar=False)
    # 5. unknown schema version
    v9 = build_clip(seed=16, device_id="cart-v9")
    land(lake, v9, sidecar_bytes=sidecar_with(v9, schema_version=9))
    # 6. oversize file
    big = land(lake, build_clip(seed=17, device_id="cart-big", n_frames=48))
    # 7. ids with '..' and with a slash (in the key), and a sidecar whose device id climbs out
    dots = build_clip(seed=18, device_id="cart-dots")
    dots_key = dots.clip_key.replace("device=cart-dots", "device=..cart")
    lake.put(dots_key, dots.clip_bytes)
    lake.put(dots_key[:-4] + ".json", dots.sidecar_bytes)
    slash = build_clip(seed=19, device_id="cart-slash")
    slash_key = slash.clip_key.replace("device=cart-slash", "device=cart/evil")
    lake.put(slash_key, slash.clip_bytes)
    climb = build_clip(seed=20, device_id="cart-climb")
    land(lake, climb, sidecar_bytes=sidecar_with(climb, device_id="../cart-climb"))

    cfg = DepotConfig(max_clip_bytes=max(len(c.clip_bytes) for c in good) + 1)
    report = ingest_day(lake, DAY, cfg, now=LATER)
    assert sorted(report.clips_ingested) == sorted(c.clip_id for c in good)
    got = {r.key: r.reason for r in report.rejections}
    expected = {
        trunc.clip_key: "undecodable", trunc.sidecar_key: "undecodable",
        sha.clip_key: "sha256_mismatch", sha.sidecar_key: "sha256_mismatch",
        orphan_sc.sidecar_key: "sidecar_without_clip",
        orphan_clip.clip_key: "clip_without_sidecar",
        v9.clip_key: "unknown_schema_version", v9.sidecar_key: "unknown_schema_version",
        big.clip_key: "oversize", big.sidecar_key: "oversize",
        dots_key: "bad_key", dots_key[:-4] + ".json": "bad_key",
        climb.clip_key: "bad_sidecar", climb.sidecar_key: "bad_sidecar",
    }
    assert got == expected
    # a slash in the device id puts the clip under no device's day (layout 2): the landing
    # sensor and the sweep cannot route it and quarantine it themselves
    assert day_of(slash_key) is None and why_unroutable(slash_key)[0] == "bad_key"
    for key, reason in expected.items():
        assert not lake.exists(key), key  # moved out of landing
        assert lake.exists("depot/quarantine/" + key.removeprefix("landing/"))
        assert _reason(lake, key)["reason"] == reason
    assert "device_id" in _reason(lake, climb.sidecar_key)["detail"]
    assert report.reject_rate == pytest.approx(8 / 10)
    assert report.rejected_clips == 8
    # the day's Parquet holds the healthy clips only
    assert set(read_frames(lake, DAY, ["clip_id"]).column("clip_id").to_pylist()) == {c.clip_id for c in good}


def test_incomplete_clip_within_the_timeout_is_left_alone(local_lake) -> None:
    c = land(local_lake, build_clip(seed=21), sidecar=False)
    report = ingest_day(local_lake, DAY, DepotConfig(pending_timeout_s=3600))
    assert report.pending == [c.clip_key[:-4]] and report.rejections == []
    assert local_lake.exists(c.clip_key)
    local_lake.put(c.sidecar_key, c.sidecar_bytes)  # the sidecar arrives: next run ingests it
    assert ingest_day(local_lake, DAY).clips_ingested == [c.clip_id]


def build_clip_from_bytes(template, data: bytes):
    """A LandedClip whose sidecar matches `data` (size, sha, id): a device that uploaded a clip its
    encoder cut short."""
    import hashlib

    from edge_agent.contract.layout import clip_key, sidecar_key
    from edge_agent.contract.schemas import parse_sidecar
    from tests.support.clips import LandedClip

    sha = hashlib.sha256(data).hexdigest()
    doc = json.loads(template.sidecar_bytes)
    doc["clip_id"] = sha[:32]
    doc["clip"]["sha256"], doc["clip"]["size_bytes"] = sha, len(data)
    sc = parse_sidecar(doc)
    t = template
    return LandedClip(sc.clip_id, t.day, t.store_id, t.device_id,
                      clip_key(t.day, t.store_id, t.device_id, sc.clip_id),
                      sidecar_key(t.day, t.store_id, t.device_id, sc.clip_id), data, sc)


def test_frames_table_columns_are_defined_once() -> None:
    from flywheel.depot import frames_table
    from flywheel.depot.ingest import frames_schema
    from flywheel.depot.search import RESULT_COLUMNS

    assert frames_schema().names == frames_table.NAMES == FRAME_COLUMNS
    assert set(RESULT_COLUMNS) <= set(frames_table.NAMES)
    with pytest.raises(KeyError, match="not columns of the frames table"):
        frames_table.columns("frame_id", "no_such_column")


def test_ingest_report_counts_and_renders_its_rejects() -> None:
    from flywheel.depot.ingest import IngestReport
    from flywheel.depot.quarantine import Rejection

    def rej(key: str, reason: str, detail: str) -> Rejection:
        return Rejection(key, reason, detail, f"depot/quarantine/{key}", "2026-11-24T00:00:00Z")

    report = IngestReport(day="2026-11-24", rejections=[
        rej("landing/clips/a.mp4", "bad_clip", "not H.264 | truncated"),
        rej("landing/clips/b.json", "bad_sidecar", "schema"),
        rej("landing/clips/c.mp4", "bad_clip", "empty")])
    assert report.reject_reasons() == {"bad_clip": 2, "bad_sidecar": 1}
    md = report.rejects_markdown().splitlines()
    assert md[0] == "| key | reason | detail |" and len(md) == 5
    assert md[2] == "| `a.mp4` | bad_clip | not H.264 / truncated |"
    assert IngestReport(day="2026-11-24").rejects_markdown() == "no rejects"


def test_sidecars_v1_and_v2_ingest_side_by_side(local_lake) -> None:
    """Devices move to ClipSidecarV2 (per-insertion decisions) one by one: the Depot reads both."""
    v1 = land(local_lake, build_clip(seed=11, n_frames=16, trigger_frames=(4,)))
    v2 = land(local_lake, build_clip(seed=12, n_frames=16, trigger_frames=(4,),
                                     insertions=[insertion_summary(3, 12, confidence=0.3)]))
    assert json.loads(v2.sidecar_bytes)["schema_version"] == 2
    report = ingest_day(local_lake, DAY, DepotConfig(frame_every=8), now=LATER)
    assert sorted(report.clips_ingested) == sorted([v1.clip_id, v2.clip_id]) and report.rejections == []
    rows = read_frames(local_lake, DAY).to_pylist()
    assert {r["clip_id"] for r in rows} == {v1.clip_id, v2.clip_id}
