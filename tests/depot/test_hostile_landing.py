"""Hostile and unlucky objects in the landing zone: none wedges the sensor, fails a day, or slips
through unchecked; each is quarantined with a reason in words while the good clips still ingest."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import dagster as dg
import pytest

from edge_agent.contract.layout import arrival_key
from edge_agent.lake import ObjectInfo
from flywheel.depot import quarantine as q
from flywheel.depot.config import DepotConfig
from flywheel.depot.ingest import ingest_day, read_frames
from flywheel.depot.landing import LandingCursor, SweepCursor, plan_sweep, scan_landing
from jobs.depot import evaluate_landing, evaluate_sweep
from resources.lake import LocalLakeResource
from tests.depot.test_ingest import build_clip_from_bytes
from tests.support.clips import build_clip, encode_h264, land, land_clip, render_frames, sidecar_with
from tests.support.hostile import audio_only_mp4, put_raw, quarantine_records, resolution_change_mp4

DAY = "2026-11-24"
T0 = datetime(2026, 11, 25, 10, 0, tzinfo=UTC)
LATER = datetime.now(UTC) + timedelta(hours=2)


def _ctx(lake, cursor=None):
    res = LocalLakeResource(root=str(lake.local_path()))
    return dg.build_sensor_context(cursor=cursor, resources={"lake": res}), res


def _tick(lake, cursor=None, now=T0):
    ctx, res = _ctx(lake, cursor)
    return evaluate_landing(ctx, res, config=DepotConfig(), now=now.timestamp())


# 1 + 2: markers with impossible times and names the lake refuses ---------------------------------

def test_impossible_and_unaddressable_markers_are_quarantined_and_the_cursor_moves_on(local_lake) -> None:
    impossible = ("landing/arrivals/20261399/9999/20261399T999999.000000Z~2026-11-24~store-a~cart-1~"
                  + "a" * 32)
    local_lake.put(impossible, b"")
    slashed = "landing/arrivals/20261125/0959/20261125T095900.000000Z~2026-11-24~store-a~cart\\1~" + "b" * 32
    put_raw(local_lake, slashed, b"")
    r1 = _tick(local_lake)
    assert r1.run_requests == []
    recs = quarantine_records(local_lake)
    assert recs[impossible]["reason"] == "bad_key" and "not a real time" in recs[impossible]["detail"]
    assert recs[slashed]["reason"] == "bad_key" and recs[slashed]["moved"] is True
    assert recs[slashed]["quarantine_key"].startswith("depot/quarantine/unsafe/")
    assert not local_lake.exists(impossible)
    assert not (local_lake.local_path() / slashed).exists()
    # the cursor moved past them: a good clip landing next is found, nothing raises
    good = land_clip(local_lake, seed=1, at=T0 + timedelta(seconds=5))
    r2 = _tick(local_lake, r1.cursor, T0 + timedelta(seconds=10))
    assert [r.partition_key for r in r2.run_requests] == [good.day]
    assert json.loads(r2.cursor)["after"] > impossible[:30]


@pytest.mark.parametrize("name", [
    "landing/clips/date=2026-11-24/store=s/device=d/back\\slash.mp4",
    "landing/clips/date=2026-11-24/store=s/device=d/ctrl\x01char.json",
    b"landing/clips/date=2026-11-24/store=s/device=d/not-utf8-\xff\xfe.mp4",
])
def test_quarantine_never_fails_on_a_bad_name(local_lake, name) -> None:
    put_raw(local_lake, name, b"payload")
    (info,) = list(local_lake.list("landing/"))
    rej = q.quarantine(local_lake, info.key, q.BAD_KEY, "test")
    assert rej.moved and rej.quarantine_key.startswith("depot/quarantine/unsafe/")
    assert local_lake.get(rej.quarantine_key) == b"payload"
    assert list(local_lake.list("landing/")) == []
    rec = json.loads(local_lake.get(rej.quarantine_key + ".reason.json"))
    assert rec["key"] == info.key and rec["reason"] == "bad_key" and len(rec["key_sha256"]) == 64
    # quarantining it again (a retried run) is harmless
    assert q.quarantine(local_lake, info.key, q.BAD_KEY, "test").quarantine_key == rej.quarantine_key


# 3 + 9: one clip never fails a day; errors in words ---------------------------------------------

def test_one_clip_that_breaks_processing_never_fails_its_day(local_lake) -> None:
    good = land_clip(local_lake, seed=2, device_id="cart-good")
    # a start time so late that start + frame time overflows the calendar
    late = build_clip(seed=3, device_id="cart-late")
    land(local_lake, late, sidecar_bytes=sidecar_with(late, started_at="9999-12-31T23:59:59+00:00"))
    # a sidecar nested 100,000 deep
    deep = build_clip(seed=4, device_id="cart-deep")
    land(local_lake, deep, sidecar_bytes=b'{"a":' * 100_000 + b"1" + b"}" * 100_000)
    # a clip that is audio only, described by a sidecar that matches its bytes
    audio = build_clip_from_bytes(build_clip(seed=5, device_id="cart-audio"), audio_only_mp4())
    land(local_lake, audio)
    report = ingest_day(local_lake, DAY, now=LATER)
    assert report.clips_ingested == [good.clip_id]
    got = {r.key: (r.reason, r.detail) for r in report.rejections}
    assert got[late.clip_key][0] == "internal_error" and "OverflowError" in got[late.clip_key][1]
    assert got[deep.sidecar_key] == ("bad_sidecar", "document: JSON nested too deeply")
    assert got[audio.clip_key][0] == "undecodable"
    assert "no video stream in the MP4 (has: audio)" in got[audio.clip_key][1]
    assert set(read_frames(local_lake, DAY, ["clip_id"]).column("clip_id").to_pylist()) == {good.clip_id}


# 4: partitions are real dates --------------------------------------------------------------------

@pytest.mark.parametrize("day", ["2026-13-45", "2026-02-30", "２０２６-11-24", "٢٠٢٦-١١-٢٤"])
def test_a_date_that_is_not_a_calendar_date_is_quarantined_not_a_partition(local_lake, day) -> None:
    c = build_clip(seed=6)
    key = c.clip_key.replace(f"date={DAY}", f"date={day}")
    put_raw(local_lake, key, c.clip_bytes)
    put_raw(local_lake, key[:-4] + ".json", c.sidecar_bytes)
    r = _tick(local_lake)
    assert r.run_requests == [] and r.dynamic_partitions_requests == []
    recs = quarantine_records(local_lake)
    assert {recs[k]["reason"] for k in (key, key[:-4] + ".json")} == {"bad_date"}
    assert "not a calendar date" in recs[key]["detail"]
    ctx, res = _ctx(local_lake)
    assert evaluate_sweep(ctx, res, now=T0).run_requests == []


# 5: nothing is lost behind the cursor ------------------------------------------------------------

def test_a_clip_from_last_week_whose_marker_sorts_behind_the_cursor_is_swept_in(local_lake) -> None:
    now = T0
    first = land_clip(local_lake, seed=7, day="2026-11-25", device_id="cart-z", at=now)
    r1 = _tick(local_lake, now=now + timedelta(seconds=1))
    real = datetime.now(UTC)  # the sweep compares with the objects' store times
    sweep_ctx, res = _ctx(local_lake)
    s1 = evaluate_sweep(sweep_ctx, res, now=real + timedelta(hours=1))
    assert [r.partition_key for r in s1.run_requests] == [first.day]
    # a clip captured a week ago lands now, with a marker stamped by a slow clock (behind the
    # arrival cursor) and a clip key that sorts before the clips cursor: the landing sensor misses it
    old_day = "2026-11-18"
    old = build_clip(seed=8, day=old_day, device_id="cart-a")
    land(local_lake, old, arrival=False)
    slow_clock = now - timedelta(days=7)
    local_lake.put(arrival_key(slow_clock, old_day, old.store_id, old.device_id, old.clip_id), b"")
    r2 = _tick(local_lake, r1.cursor, now + timedelta(seconds=30))
    assert r2.run_requests == []
    # the sweep's next pass finds it, requests its day, and the day ingests it
    s2 = evaluate_sweep(_ctx(local_lake, s1.cursor)[0], res, now=real + timedelta(hours=2))
    assert [r.partition_key for r in s2.run_requests] == [old_day]
    assert ingest_day(local_lake, old_day, now=LATER).clips_ingested == [old.clip_id]
    # once covered, later passes request nothing more for either day
    s3 = evaluate_sweep(_ctx(local_lake, s2.cursor)[0], res, now=real + timedelta(hours=3))
    assert s3.run_requests == []


def _info(key: str, at: float) -> ObjectInfo:
    return ObjectInfo(key=key, size=1, etag=None, last_modified=datetime.fromtimestamp(at, UTC))


def test_sweep_plan_is_bounded_per_tick_and_covers_every_day_once_settled() -> None:
    keys = [f"landing/clips/date=2026-11-{d:02d}/store=s/device=d/{i:032x}.mp4" for d in (1, 2, 3)
            for i in range(4)]
    infos = [_info(k, 1000.0) for k in keys]
    now, settle = 5000.0, 900.0
    cur, seen, ticks = SweepCursor(), [], 0
    while cur.passes == 0:  # one pass, 5 keys a tick
        start = 0 if cur.after is None else keys.index(cur.after) + 1
        plan = plan_sweep(iter(infos[start:start + 5]), cur, now=now, limit=5, settle_s=settle)
        assert plan.listed <= 5
        seen += list(plan.days)
        cur, ticks = plan.cursor, ticks + 1
    assert ticks == 3 and sorted(set(seen)) == ["2026-11-01", "2026-11-02", "2026-11-03"]
    assert cur.after is None and cur.covered == {f"2026-11-0{d}": 1000.0 for d in (1, 2, 3)}
    # a second pass over unchanged days asks for nothing
    assert plan_sweep(iter(infos[:5]), cur, now=now, limit=5, settle_s=settle).days == {}
    # an object too young to be settled is asked for again on every pass until it is
    young = [_info(keys[0], now - 10)]
    p1 = plan_sweep(iter(young), cur, now=now, limit=5, settle_s=settle)
    assert list(p1.days) == ["2026-11-01"]
    p2 = plan_sweep(iter(young), p1.cursor, now=now + 60, limit=5, settle_s=settle)
    assert list(p2.days) == ["2026-11-01"] and p2.days != p1.days  # a new run key each time
    p3 = plan_sweep(iter(young), p2.cursor, now=now + settle + 60, limit=5, settle_s=settle)
    assert p3.days == {"2026-11-01": p3.days["2026-11-01"]}
    assert plan_sweep(iter(young), p3.cursor, now=now + 2 * settle, limit=5, settle_s=settle).days == {}
    # unroutable keys are handed back for quarantine, never as a day
    bad = plan_sweep(iter([_info("landing/clips/date=2026-13-01/x.mp4", 1.0),
                           _info("landing/clips/stray", 1.0)]), SweepCursor(), now=now, limit=5,
                     settle_s=settle)
    assert bad.days == {} and len(bad.unroutable) == 2
    assert SweepCursor.from_json("2026-11-25T10") == SweepCursor()  # the old hourly cursor


# 6: the video must match its sidecar --------------------------------------------------------------

def _described(template, data: bytes, **clip_changes):
    """A clip whose sidecar matches `data` (size, sha, id) but states `clip_changes`."""
    c = build_clip_from_bytes(template, data)
    doc = json.loads(c.sidecar_bytes)
    n = clip_changes.pop("frame_count", None)
    if n is not None:
        doc["clip"]["frame_count"] = n
        doc["frames"] = doc["frames"][:n]
        doc["weight_series"] = [s for s in doc["weight_series"] if s["t"] < n / 8]
    doc["clip"].update(clip_changes)
    return c, json.dumps(doc).encode()


def test_video_that_does_not_match_its_sidecar_is_quarantined(local_lake) -> None:
    good = land_clip(local_lake, seed=20, device_id="cart-good")
    base = build_clip(seed=21, device_id="cart-more")  # 24 frames, sidecar claims 20
    more, more_sc = _described(base, base.clip_bytes, frame_count=20)
    land(local_lake, more, sidecar_bytes=more_sc)
    wide = build_clip(seed=22, device_id="cart-wide")
    wide_c, wide_sc = _described(wide, wide.clip_bytes, width=320)
    land(local_lake, wide_c, sidecar_bytes=wide_sc)
    not_h264 = encode_h264(render_frames(24, 160, 120, product=1, seed=24), 8, codec="mpeg4")
    mpeg4 = build_clip_from_bytes(build_clip(seed=24, device_id="cart-mpeg4"), not_h264)
    land(local_lake, mpeg4)
    changing = resolution_change_mp4(render_frames(12, 160, 120, product=1, seed=23),
                                     render_frames(12, 128, 96, product=1, seed=24))
    switch = build_clip_from_bytes(build_clip(seed=23, device_id="cart-switch"), changing)
    land(local_lake, switch)
    report = ingest_day(local_lake, DAY, now=LATER)
    assert report.clips_ingested == [good.clip_id]
    got = {r.key: (r.reason, r.detail) for r in report.rejections if r.key.endswith(".mp4")}
    assert got[more.clip_key] == ("video_mismatch", "the video has more than the 20 frames its sidecar says")
    assert got[wide_c.clip_key] == ("video_mismatch", "frame 0 is 160x120, sidecar says 320x120")
    assert got[switch.clip_key] == ("video_mismatch", "frame 12 is 128x96, sidecar says 160x120")
    assert got[mpeg4.clip_key] == ("video_mismatch", "codec is mpeg4, sidecar says h264")


# 7: already ingested means the same clip and the same sidecar -------------------------------------

def test_a_sidecar_replaced_after_ingest_is_a_conflict_with_both_versions_kept(local_lake) -> None:
    c = land_clip(local_lake, seed=30)
    assert ingest_day(local_lake, DAY, now=LATER).clips_ingested == [c.clip_id]
    assert ingest_day(local_lake, DAY, now=LATER).clips_already == 1  # unchanged: no conflict
    replaced = sidecar_with(c, agent_version="9.9.9")
    local_lake.put(c.sidecar_key, replaced)
    report = ingest_day(local_lake, DAY, now=LATER)
    (rej,) = report.rejections
    assert (rej.key, rej.reason) == (c.sidecar_key, "sidecar_conflict")
    assert local_lake.get(rej.quarantine_key) == replaced
    assert local_lake.get(rej.quarantine_key + ".ingested.json") == c.sidecar_bytes
    assert local_lake.exists(c.clip_key)  # the ingested clip stays
    again = ingest_day(local_lake, DAY, now=LATER)
    assert again.rejections == [] and again.clips_already == 1


def test_the_same_clip_bytes_from_a_second_device_are_recorded_not_skipped(local_lake) -> None:
    a = land_clip(local_lake, seed=31, device_id="cart-a")
    b = build_clip(seed=31, device_id="cart-b")  # same pixels, same bytes, same clip id
    assert a.clip_id == b.clip_id
    land(local_lake, b)
    first = ingest_day(local_lake, DAY, now=LATER)  # both in one run
    assert first.clips_ingested == [a.clip_id]
    assert {(r.key, r.reason) for r in first.rejections} == {(b.clip_key, "duplicate_clip"),
                                                              (b.sidecar_key, "duplicate_clip")}
    assert a.clip_key in first.rejections[0].detail
    c = build_clip(seed=31, device_id="cart-c")  # and again in a later run
    land(local_lake, c)
    later = ingest_day(local_lake, DAY, now=LATER)
    assert {(r.key, r.reason) for r in later.rejections} == {(c.clip_key, "duplicate_clip"),
                                                              (c.sidecar_key, "duplicate_clip")}
    assert local_lake.exists(a.clip_key) and not local_lake.exists(c.clip_key)
    assert all(local_lake.exists(r.quarantine_key) for r in later.rejections)


def test_scan_never_raises_on_any_landing_name(local_lake) -> None:
    for name in ["landing/clips/a\\b.mp4", "landing/clips/date=2026-11-24/x\x1bz.json",
                 "landing/arrivals/2026/x\x02y", b"landing/arrivals/\xff"]:
        put_raw(local_lake, name, b"")
    scan = scan_landing(local_lake, LandingCursor(), now=T0.timestamp())
    assert len(scan.unroutable) == 4 and scan.days == []


def test_an_object_no_call_can_reach_is_recorded_as_left_in_place(local_lake) -> None:
    outside = local_lake.local_path().parent / "secret"
    outside.write_bytes(b"not yours")
    rej = q.quarantine(local_lake, "landing/clips/../../../secret", q.BAD_KEY, "climbs out")
    assert not rej.moved and outside.read_bytes() == b"not yours"
    rec = json.loads(local_lake.get(rej.quarantine_key + ".reason.json"))
    assert rec["moved"] is False and rec["key"] == "landing/clips/../../../secret"
