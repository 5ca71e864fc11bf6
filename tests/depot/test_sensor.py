"""The landing sensor, tick by tick, with a real Dagster instance and a real lake."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import dagster as dg
import pytest

from flywheel.depot.config import DepotConfig
from flywheel.depot.landing import LandingCursor, scan_landing
from jobs.depot import evaluate_landing, evaluate_sweep, landing_clips_sensor
from resources.lake import LocalLakeResource
from tests.support.clips import build_clip, land, land_clip

DAY = "2026-11-24"
T0 = datetime(2026, 11, 25, 10, 0, tzinfo=UTC)


@pytest.fixture
def instance():
    with dg.instance_for_test() as inst:
        yield inst


def tick(lake, instance, cursor=None, now: datetime | None = None, config=None):
    res = LocalLakeResource(root=str(lake.local_path()))
    ctx = dg.build_sensor_context(cursor=cursor, instance=instance, resources={"lake": res})
    if now is None and config is None:
        return landing_clips_sensor(ctx)
    return evaluate_landing(ctx, res, config=config, now=(now or T0).timestamp())


def test_empty_landing_requests_nothing(local_lake, instance) -> None:
    result = tick(local_lake, instance)
    assert result.run_requests == []
    assert json.loads(result.cursor) == {"after": None, "clips_after": None, "pending": {}}


def test_new_clips_register_days_and_request_one_run_per_day(local_lake, instance) -> None:
    a = land_clip(local_lake, seed=1, at=T0)
    land_clip(local_lake, seed=2, device_id="cart-002", at=T0 + timedelta(seconds=1))
    land_clip(local_lake, seed=3, day="2026-11-25", at=T0 + timedelta(seconds=2))
    result = tick(local_lake, instance, now=T0 + timedelta(seconds=5), config=DepotConfig())
    assert sorted(r.partition_key for r in result.run_requests) == [DAY, "2026-11-25"]
    assert len({r.run_key for r in result.run_requests}) == 2
    (req,) = result.dynamic_partitions_requests
    assert sorted(req.partition_keys) == [DAY, "2026-11-25"]
    # the next tick with the returned cursor sees nothing new: no clip is requested twice
    again = tick(local_lake, instance, cursor=result.cursor, now=T0 + timedelta(seconds=40),
                 config=DepotConfig())
    assert again.run_requests == []
    # a new clip whose CLIP key sorts before everything seen so far (the case a start-after cursor
    # over landing/clips/ would miss) -> exactly one more run for its day
    b = land_clip(local_lake, seed=4, device_id="cart-000", at=T0 + timedelta(seconds=50))
    assert b.clip_key < a.clip_key
    third = tick(local_lake, instance, cursor=again.cursor, now=T0 + timedelta(seconds=60),
                 config=DepotConfig())
    assert [r.partition_key for r in third.run_requests] == [DAY]
    assert third.run_requests[0].tags["depot/new_clips"] == "1"


def test_real_sensor_definition_runs_on_a_context(local_lake, instance) -> None:
    land_clip(local_lake, seed=11)
    result = tick(local_lake, instance)  # the decorated sensor, resources injected by Dagster
    assert [r.partition_key for r in result.run_requests] == [DAY]


def test_incomplete_clip_waits_then_completes(local_lake, instance) -> None:
    # a marker whose clip is not there yet (sidecar without clip): pending, no run
    c = land(local_lake, build_clip(seed=5), clip_part=False, at=T0)
    land_clip(local_lake, seed=6, device_id="cart-009", at=T0 + timedelta(seconds=1))
    r1 = tick(local_lake, instance, now=T0 + timedelta(seconds=2), config=DepotConfig())
    cur = json.loads(r1.cursor)
    assert list(cur["pending"]) == [c.clip_key[: -len(".mp4")]]
    assert [r.partition_key for r in r1.run_requests] == [DAY]  # for the complete clip only
    assert r1.run_requests[0].tags["depot/new_clips"] == "1"
    # the clip lands; no new marker: only the pending re-check can find it
    local_lake.put(c.clip_key, c.clip_bytes)
    r2 = tick(local_lake, instance, cursor=r1.cursor, now=T0 + timedelta(seconds=20), config=DepotConfig())
    assert json.loads(r2.cursor)["pending"] == {}
    assert [r.partition_key for r in r2.run_requests] == [DAY]
    assert r2.run_requests[0].run_key != r1.run_requests[0].run_key


def test_incomplete_clip_expires_into_a_run_after_the_timeout(local_lake, instance) -> None:
    c = land(local_lake, build_clip(seed=7), clip_part=False, at=T0)
    cfg = DepotConfig(pending_timeout_s=60)
    r1 = tick(local_lake, instance, now=T0, config=cfg)
    assert r1.run_requests == [] and len(json.loads(r1.cursor)["pending"]) == 1
    r2 = tick(local_lake, instance, cursor=r1.cursor, now=T0 + timedelta(seconds=30), config=cfg)
    assert r2.run_requests == []  # still within the timeout
    r3 = tick(local_lake, instance, cursor=r2.cursor, now=T0 + timedelta(seconds=61), config=cfg)
    assert [r.partition_key for r in r3.run_requests] == [DAY]
    assert r3.run_requests[0].tags["depot/expired"] == "1"
    assert json.loads(r3.cursor)["pending"] == {}
    assert local_lake.exists(c.sidecar_key)  # the sensor only decides; the ingest run quarantines


def test_restart_from_a_saved_cursor_gives_the_same_run_keys(local_lake, instance) -> None:
    land_clip(local_lake, seed=8, at=T0)
    first = tick(local_lake, instance, now=T0, config=DepotConfig())
    saved = first.cursor
    land_clip(local_lake, seed=9, device_id="cart-100", at=T0 + timedelta(seconds=1))
    land_clip(local_lake, seed=10, device_id="cart-101", at=T0 + timedelta(seconds=2))
    second = tick(local_lake, instance, cursor=saved, now=T0 + timedelta(seconds=30), config=DepotConfig())
    # the daemon died before committing `second`: the re-evaluated tick asks for the same runs,
    # so Dagster's run-key dedup keeps every clip to one ingest
    replay = tick(local_lake, instance, cursor=saved, now=T0 + timedelta(seconds=31), config=DepotConfig())
    assert [r.run_key for r in second.run_requests] == [r.run_key for r in replay.run_requests]
    assert second.run_requests[0].tags["depot/new_clips"] == "2"
    assert second.cursor == replay.cursor


def test_backlog_drains_in_bounded_ticks(local_lake) -> None:
    clips = [land_clip(local_lake, seed=20 + i, device_id=f"cart-{i:03d}", at=T0 + timedelta(seconds=i))
             for i in range(4)]
    cfg = DepotConfig(max_keys_per_tick=3)
    cursor, ready, ticks = LandingCursor(), set(), 0
    while True:
        scan = scan_landing(local_lake, cursor, now=T0.timestamp(), config=cfg)
        assert scan.listed <= 6  # 3 per stream
        ticks += 1
        ready |= {s for v in scan.ready.values() for s in v}
        cursor = scan.cursor
        if scan.listed == 0:
            break
    assert ready == {c.clip_key[:-4] for c in clips} and cursor.pending == {}
    assert ticks == 4  # 8 clip keys at 3 per tick, plus the empty tick


def test_devices_without_arrival_markers_are_still_found(local_lake, instance) -> None:
    # an agent that writes no markers: its clips are seen by the landing/clips listing
    a = land(local_lake, build_clip(seed=40, device_id="cart-old-agent"), arrival=False)
    r1 = tick(local_lake, instance, now=T0, config=DepotConfig(pending_timeout_s=60))
    assert [r.partition_key for r in r1.run_requests] == [DAY]
    assert r1.run_requests[0].tags["depot/new_clips"] == "1"
    # a clip whose sidecar never comes (so no marker either): pending, then expired into a run
    b = land(local_lake, build_clip(seed=41, device_id="cart-zzz"), sidecar=False)
    r2 = tick(local_lake, instance, cursor=r1.cursor, now=T0 + timedelta(seconds=5),
              config=DepotConfig(pending_timeout_s=60))
    assert r2.run_requests == [] and list(json.loads(r2.cursor)["pending"]) == [b.clip_key[:-4]]
    r3 = tick(local_lake, instance, cursor=r2.cursor, now=T0 + timedelta(seconds=70),
              config=DepotConfig(pending_timeout_s=60))
    assert [(r.partition_key, r.tags["depot/expired"]) for r in r3.run_requests] == [(DAY, "1")]
    assert a.clip_key < b.clip_key  # (b sorts after the cursor, so this listing could see it)


def test_marker_from_a_clock_far_ahead_does_not_blind_the_sensor(local_lake) -> None:
    land_clip(local_lake, seed=30, device_id="cart-fast", at=T0 + timedelta(days=400))
    s1 = scan_landing(local_lake, LandingCursor(), now=T0.timestamp())
    assert sum(map(len, s1.ready.values())) == 1 and s1.cursor.after is None
    land_clip(local_lake, seed=31, at=T0 + timedelta(seconds=5))
    s2 = scan_landing(local_lake, s1.cursor, now=T0.timestamp() + 10)
    assert sum(map(len, s2.ready.values())) == 2  # the normal clip is found


def test_unparseable_marker_is_quarantined_by_the_sensor(local_lake, instance) -> None:
    bad = "landing/arrivals/20261125/1000/20261125T100000.000000Z~2026-11-24~store-a~dev..x~abc"
    local_lake.put(bad, b"")
    result = tick(local_lake, instance)
    assert result.run_requests == []
    assert not local_lake.exists(bad)
    reason = json.loads(local_lake.get("depot/quarantine/" + bad.removeprefix("landing/") + ".reason.json"))
    assert reason["reason"] == "bad_key"


def test_sweep_finds_clips_without_markers_in_any_day(local_lake, instance) -> None:
    c = land(local_lake, build_clip(seed=12, day="2026-11-24"), sidecar=False)  # no sidecar, no marker
    land(local_lake, build_clip(seed=13, day="2026-11-25"), arrival=False)  # a device without markers
    land(local_lake, build_clip(seed=14, day="2026-10-01"), arrival=False)  # and an old day
    res = LocalLakeResource(root=str(local_lake.local_path()))

    def sweep(cursor, at):
        ctx = dg.build_sensor_context(cursor=cursor, instance=instance, resources={"lake": res})
        return evaluate_sweep(ctx, res, now=at)

    real = datetime.now(UTC)
    r1 = sweep(None, real + timedelta(minutes=1))  # all young: asked for, and again until settled
    assert sorted(x.partition_key for x in r1.run_requests) == ["2026-10-01", c.day, "2026-11-25"]
    r2 = sweep(r1.cursor, real + timedelta(minutes=5))
    assert len(r2.run_requests) == 3 and not {x.run_key for x in r2.run_requests} & {
        x.run_key for x in r1.run_requests}
    r3 = sweep(r2.cursor, real + timedelta(hours=1))  # settled: the incomplete clip has timed out
    assert len(r3.run_requests) == 3
    assert sweep(r3.cursor, real + timedelta(hours=2)).run_requests == []  # covered: nothing more
    assert json.loads(r3.cursor)["passes"] == 3
