"""Depot jobs and the landing sensor: new clips in landing/clips/ -> per-capture-day ingest runs."""

import time
from datetime import UTC, date, datetime, timedelta

import dagster as dg

from assets.depot import capture_days, depot_fleet_rollup, depot_frames, depot_index
from flywheel.depot.config import DepotConfig
from resources.lake import LakeResource

depot_ingest_job = dg.define_asset_job(
    "depot_ingest_job", selection=dg.AssetSelection.assets(depot_frames, depot_index, depot_fleet_rollup),
    partitions_def=capture_days,
    description="Ingest one capture day, update the search index and the fleet rollup.")


def evaluate_landing(context: dg.SensorEvaluationContext, lake: LakeResource,
                     config: DepotConfig | None = None, now: float | None = None) -> dg.SensorResult:
    """One tick: list after the cursor, register the days, request one run per day with a run key."""
    from flywheel.depot.landing import LandingCursor, scan_landing
    from flywheel.depot.quarantine import BAD_KEY, quarantine

    the_lake = lake.lake()
    scan = scan_landing(the_lake, LandingCursor.from_json(context.cursor),
                        now=time.time() if now is None else now, config=config)
    for key in scan.unroutable:  # no capture day -> no partition to report it in: log it here
        rej = quarantine(the_lake, key, BAD_KEY, "not a valid arrival marker key")
        context.log.warning(f"quarantined {key}: {rej.reason}")
    days = [d for d in scan.days if d]
    runs = [dg.RunRequest(run_key=scan.run_key(d), partition_key=d,
                          tags={"depot/new_clips": str(len(scan.ready.get(d, []))),
                                "depot/expired": str(len(scan.expired.get(d, [])))})
            for d in days]
    context.log.info(f"listed {scan.listed} keys, re-checked {scan.checked} pending; "
                     f"{len(runs)} day runs, {len(scan.cursor.pending)} clips pending")
    return dg.SensorResult(
        run_requests=runs,
        dynamic_partitions_requests=[capture_days.build_add_request(days)] if days else [],
        cursor=scan.cursor.to_json())


@dg.sensor(job=depot_ingest_job, minimum_interval_seconds=30, default_status=dg.DefaultSensorStatus.RUNNING,
           description="Watches new clips in landing/ via the arrival log with a start-after cursor "
                       "(O(new) per tick); registers capture days, one ingest run per day with new clips.")
def landing_clips_sensor(context: dg.SensorEvaluationContext, lake: LakeResource) -> dg.SensorResult:
    return evaluate_landing(context, lake)


def evaluate_sweep(context: dg.SensorEvaluationContext, lake: LakeResource, today: date | None = None
                   ) -> dg.SensorResult:
    """Once per day: ingest yesterday in full. Catches what has no arrival marker (clips whose
    sidecar never came -> quarantine after the timeout, devices that write no markers)."""
    from edge_agent.contract.layout import day_prefix

    today = today or datetime.now(UTC).date()
    day = (today - timedelta(days=1)).isoformat()
    if context.cursor and context.cursor >= day:
        return dg.SensorResult(cursor=context.cursor)
    if not any(True for _ in lake.lake().list(day_prefix(day), limit=1)):
        return dg.SensorResult(cursor=day)
    return dg.SensorResult(
        run_requests=[dg.RunRequest(run_key=f"depot-sweep:{day}", partition_key=day,
                                    tags={"depot/sweep": "true"})],
        dynamic_partitions_requests=[capture_days.build_add_request([day])], cursor=day)


@dg.sensor(job=depot_ingest_job, minimum_interval_seconds=3600, default_status=dg.DefaultSensorStatus.RUNNING,
           description="Daily full sweep of yesterday's landing partition (stragglers, timeouts).")
def landing_sweep_sensor(context: dg.SensorEvaluationContext, lake: LakeResource) -> dg.SensorResult:
    return evaluate_sweep(context, lake)


defs = dg.Definitions(jobs=[depot_ingest_job], sensors=[landing_clips_sensor, landing_sweep_sensor])
