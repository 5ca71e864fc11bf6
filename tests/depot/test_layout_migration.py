"""Clip keys moved from date-first (layout 1) to device-first (layout 2) so that per-device prefix
rules can confine device writes. Clips already landed in layout 1 must still be found by the
landing sensor, the sweep and the day's ingest, next to new layout-2 clips of the same day."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from edge_agent.contract.layout import parse_clip_key
from flywheel.depot.config import DepotConfig
from flywheel.depot.ingest import ingest_day, read_frames
from flywheel.depot.landing import LandingCursor, SweepCursor, plan_sweep, scan_landing
from tests.support.clips import build_clip, land

DAY = "2026-11-24"
T0 = datetime(2026, 11, 25, 10, 0, tzinfo=UTC)


@pytest.mark.parametrize("backend", ["local", pytest.param("s3", marks=pytest.mark.integration)])
def test_a_day_in_both_layouts_is_sensed_swept_and_ingested(backend, request) -> None:
    lake = request.getfixturevalue("s3_lake" if backend == "s3" else "local_lake")
    old = land(lake, build_clip(seed=31, device_id="cart-old", layout=1), at=T0)
    new = land(lake, build_clip(seed=32, device_id="cart-new"), at=T0 + timedelta(seconds=1))
    assert old.clip_key.startswith(f"landing/clips/date={DAY}/")
    assert new.clip_key.startswith(f"landing/clips/device=cart-new/date={DAY}/")
    assert parse_clip_key(old.clip_key).layout == 1 and parse_clip_key(new.clip_key).layout == 2

    scan = scan_landing(lake, LandingCursor(), now=(T0 + timedelta(seconds=5)).timestamp(),
                        config=DepotConfig())
    assert scan.days == [DAY] and not scan.unroutable
    assert sorted(scan.ready[DAY]) == sorted(c.clip_key[:-4] for c in (old, new))
    assert not scan.cursor.pending  # each marker resolved to its own layout's keys

    sweep = plan_sweep(lake.list("landing/clips"), SweepCursor(), now=T0.timestamp() + 3600, limit=100,
                       settle_s=60)
    assert list(sweep.days) == [DAY] and sweep.listed == 4 and not sweep.unroutable

    report = ingest_day(lake, DAY, now=T0 + timedelta(hours=1))
    assert sorted(report.clips_ingested) == sorted([old.clip_id, new.clip_id]) and not report.rejections
    frames = read_frames(lake, DAY, ["clip_id", "clip_key", "device_id"]).to_pylist()
    assert {(r["clip_key"], r["device_id"]) for r in frames} == {
        (old.clip_key, "cart-old"), (new.clip_key, "cart-new")}
    assert ingest_day(lake, DAY).clips_already == 2  # a re-run keeps both, decodes none
