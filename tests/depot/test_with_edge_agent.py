"""Contract check against the real collector: carts simulated through real edge agents upload to a
lake; the Depot finds (arrival markers, else the sweep), ingests, indexes, searches and replays it.
Guards the hand-off between edge_agent/ and the Depot."""

from __future__ import annotations

from datetime import UTC, datetime

import dagster as dg
import pytest

from jobs.depot import evaluate_landing, evaluate_sweep
from resources.lake import LocalLakeResource

DAY = "2026-11-24"


@pytest.mark.slow
def test_clips_from_real_edge_agents_ingest_index_search_and_replay(local_lake, tmp_path) -> None:
    runner = pytest.importorskip("flywheel.fleet.runner")
    from flywheel.depot.embed import DescriptorEncoder
    from flywheel.depot.fleet_rollup import rollup_day
    from flywheel.depot.index import index_day
    from flywheel.depot.ingest import ingest_day
    from flywheel.depot.replay import render_replay
    from flywheel.depot.search import SearchQuery, search

    summary = runner.simulate_fleet(local_lake, carts=2, minutes=0.5, seed=3, day=DAY,
                                    work_dir=tmp_path / "fleet", progress=False)
    assert summary.reconciles()
    res = LocalLakeResource(root=str(local_lake.local_path()))
    with dg.instance_for_test() as instance:
        ctx = dg.build_sensor_context(instance=instance, resources={"lake": res})
        tick = evaluate_landing(ctx, res)
        # one tick finds every uploaded clip (through arrival markers, or the clip listing for
        # agents that write none); the hourly sweep asks for the same day
        assert [(r.partition_key, r.tags["depot/new_clips"]) for r in tick.run_requests] == [
            (DAY, str(summary.uploaded))]
        days = {r.partition_key for r in tick.run_requests}
        sweep_ctx = dg.build_sensor_context(instance=instance, resources={"lake": res})
        sweep = evaluate_sweep(sweep_ctx, res, now=datetime(2026, 11, 25, 0, 5, tzinfo=UTC))
        days |= {r.partition_key for r in sweep.run_requests}
    assert days == {DAY}
    report = ingest_day(local_lake, DAY, encoder=DescriptorEncoder())
    assert report.rejections == [], [(r.key, r.reason, r.detail) for r in report.rejections]
    assert len(report.clips_ingested) == summary.uploaded > 0  # every uploaded clip, none rejected
    idx = index_day(local_lake, DAY, DescriptorEncoder())
    assert idx.rows_day == report.frames_written == idx.vectors_reused > 0
    trig = search(local_lake, SearchQuery(trigger_frames_only=True, limit=5))
    assert trig and all(h.triggers for h in trig)
    rep = render_replay(local_lake, trig[0].clip_id, out_dir=tmp_path / "replay")
    assert rep.sheet_path.stat().st_size > 1000 and rep.frames > 0
    fleet = rollup_day(local_lake, DAY)
    assert {d.device_id for d in fleet.devices} == set(summary.devices)
    assert sum(d.clips_landed for d in fleet.devices) == summary.uploaded
