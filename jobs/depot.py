"""The Depot stage (Manage): its assets (assets/depot.py), the per-day ingest job and the landing
sensors: new clips in landing/clips/ -> per-capture-day ingest runs."""

import time
from datetime import UTC, datetime, timedelta

import dagster as dg

import assets.depot
from assets.depot import capture_days, depot_fleet_rollup, depot_frames, depot_index
from flywheel.depot.config import DepotConfig
from resources.deployments import Deployment
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
                          # "depot/day" lets dagster.yaml's run queue allow one run per day at a time
                          # (tag_concurrency_limits, applyLimitPerUniqueValue)
                          tags={"depot/day": d, "depot/new_clips": str(len(scan.ready.get(d, []))),
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


def evaluate_sweep(context: dg.SensorEvaluationContext, lake: LakeResource, now: datetime | None = None
                   ) -> dg.SensorResult:
    """Hourly: ingest today's landing partition in full; after midnight, yesterday once more.

    The ingest lists the whole day (O(day), in the run, not in this tick) and skips what it already
    has, so this catches what has no arrival marker: clips whose sidecar never came (quarantined
    after the timeout) and devices that write no markers (found within the hour)."""
    from edge_agent.contract.layout import day_prefix

    now = now or datetime.now(UTC)
    slot = now.strftime("%Y-%m-%dT%H")
    if context.cursor == slot:
        return dg.SensorResult(cursor=slot)
    today = now.date()
    targets = {today.isoformat(): f"depot-sweep:{today.isoformat()}:{now:%H}"}
    if not context.cursor or context.cursor[:10] < today.isoformat():
        yesterday = (today - timedelta(days=1)).isoformat()
        targets[yesterday] = f"depot-sweep:{yesterday}:final"
    the_lake = lake.lake()
    days = [d for d in sorted(targets) if any(True for _ in the_lake.list(day_prefix(d), limit=1))]
    return dg.SensorResult(
        run_requests=[dg.RunRequest(run_key=targets[d], partition_key=d,
                                    tags={"depot/day": d, "depot/sweep": "true"}) for d in days],
        dynamic_partitions_requests=[capture_days.build_add_request(days)] if days else [],
        cursor=slot)


@dg.sensor(job=depot_ingest_job, minimum_interval_seconds=600, default_status=dg.DefaultSensorStatus.RUNNING,
           description="Hourly full sweep of today's (and after midnight yesterday's) landing "
                       "partition: clips without arrival markers, incomplete-clip timeouts.")
def landing_sweep_sensor(context: dg.SensorEvaluationContext, lake: LakeResource) -> dg.SensorResult:
    return evaluate_sweep(context, lake)


def defs(deployment: Deployment) -> dg.Definitions:
    """Everything of the Depot stage for one deployment (see flywheel/definitions.py)."""
    return dg.Definitions(
        assets=dg.load_assets_from_modules([assets.depot]),
        asset_checks=dg.load_asset_checks_from_modules([assets.depot]),
        jobs=[depot_ingest_job], sensors=[landing_clips_sensor, landing_sweep_sensor],
        resources=deployment.pick("lake", "index", "encoder"))
