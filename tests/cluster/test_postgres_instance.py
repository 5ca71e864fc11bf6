"""The cluster deployment's Dagster instance (deploy/dagster.yaml) on a real PostgreSQL: the landing
sensor's tick and the ingest run it requests, the weekly schedule's run, and a backfill of capture
days (one queued run per day), stored there and read back."""

from __future__ import annotations

from datetime import UTC, datetime

import dagster as dg
import pytest

from assets.depot import capture_days, depot_frames
from jobs.depot import landing_clips_sensor
from jobs.learner import weekly_training
from resources.encoder import EncoderResource
from resources.lake import LocalLakeResource
from tests.support.clips import land_clip

pytestmark = [pytest.mark.integration]


def test_instance_is_postgres_with_the_cluster_run_queue(pg_instance) -> None:
    assert type(pg_instance.event_log_storage).__name__ == "PostgresEventLogStorage"
    assert type(pg_instance.schedule_storage).__name__ == "PostgresScheduleStorage"
    coordinator = pg_instance.run_coordinator
    assert type(coordinator).__name__ == "QueuedRunCoordinator"
    day, training = coordinator.get_run_queue_config().tag_concurrency_limits
    assert day["key"] == "depot/day" and day["limit"] == 1
    assert training["key"] == "flywheel/training" and training["limit"] == 1
    assert pg_instance.run_monitoring_enabled and pg_instance.run_monitoring_max_runtime_seconds == 21600


def test_sensor_tick_then_ingest_run_persist_in_postgres(pg_instance, local_lake) -> None:
    land_clip(local_lake, seed=1, day="2026-11-20")
    land_clip(local_lake, seed=2, day="2026-11-21", device_id="cart-002")
    lake = LocalLakeResource(root=str(local_lake.local_path()))
    ctx = dg.build_sensor_context(instance=pg_instance, resources={"lake": lake})
    tick = landing_clips_sensor(ctx)
    assert sorted(r.partition_key for r in tick.run_requests) == ["2026-11-20", "2026-11-21"]
    pg_instance.add_dynamic_partitions(capture_days.name,
                                       list(tick.dynamic_partitions_requests[0].partition_keys))
    req = tick.run_requests[0]
    result = dg.materialize([depot_frames], partition_key=req.partition_key, instance=pg_instance,
                            resources={"lake": lake, "encoder": EncoderResource(kind="descriptor")},
                            tags=req.tags)
    assert result.success
    # read back from PostgreSQL: the run, its tags, the materialization of exactly this partition
    run = pg_instance.get_run_by_id(result.run_id)
    assert run.tags["depot/day"] == req.partition_key and run.tags["dagster/partition"] == req.partition_key
    assert pg_instance.get_materialized_partitions(dg.AssetKey("depot_frames")) == {req.partition_key}
    assert set(pg_instance.get_dynamic_partitions(capture_days.name)) >= {"2026-11-20", "2026-11-21"}
    # the cursor the tick returned: the next tick requests nothing
    again = landing_clips_sensor(dg.build_sensor_context(cursor=tick.cursor, instance=pg_instance,
                                                         resources={"lake": lake}))
    assert again.run_requests == []


def test_weekly_schedule_tick_stores_its_run_in_postgres(pg_instance) -> None:
    from flywheel.definitions import build_definitions

    monday = datetime(2026, 11, 30, 3, 0, tzinfo=UTC)
    ctx = dg.build_schedule_context(instance=pg_instance, scheduled_execution_time=monday)
    (req,) = list(weekly_training.evaluate_tick(ctx).run_requests)
    job = build_definitions("local").resolve_job_def(weekly_training.job_name)
    run = pg_instance.create_run_for_job(
        job, run_config=req.run_config,
        tags={**req.tags, "dagster/schedule_name": weekly_training.name})
    stored = pg_instance.get_runs(
        filters=dg.RunsFilter(tags={"dagster/schedule_name": weekly_training.name}))
    assert [(r.run_id, r.status) for r in stored] == [(run.run_id, dg.DagsterRunStatus.NOT_STARTED)]
    assert stored[0].job_name == "train_and_evaluate"


@pytest.mark.slow
def test_backfill_of_capture_days_queues_one_run_per_day_in_postgres(pg_instance, pg_home) -> None:
    """`dagster job backfill` over historical days against the cluster instance: a backfill record
    and one queued run per day, tagged so the run queue admits one run per day at a time."""
    import json
    import os
    import subprocess
    import sys

    from tests.cluster.conftest import ROOT

    days = ["2026-10-01", "2026-10-02", "2026-10-03"]
    pg_instance.add_dynamic_partitions(capture_days.name, days)
    out = subprocess.run(
        [sys.executable, "-m", "dagster", "job", "backfill", "-m", "flywheel.definitions",
         "-j", "depot_ingest_job", "--partitions", ",".join(days), "--noprompt",
         "--tags", json.dumps({"purpose": "reingest"})],
        cwd=ROOT, capture_output=True, text=True, timeout=600, env=dict(os.environ))
    assert out.returncode == 0, (out.stdout + out.stderr)[-3000:]
    runs = pg_instance.get_runs(filters=dg.RunsFilter(tags={"purpose": "reingest"}))
    assert sorted(r.tags["dagster/partition"] for r in runs) == days
    assert {r.status for r in runs} == {dg.DagsterRunStatus.QUEUED}  # the daemon launches them
    assert len({r.tags["dagster/backfill"] for r in runs}) == 1
