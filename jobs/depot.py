"""The Depot stage (Manage): its assets (assets/depot.py), the per-day ingest job and the landing
sensors: new clips in landing/clips/ -> per-capture-day ingest runs; after a release, the re-index of
past days under the new frame encoder."""

import time
from datetime import UTC, datetime

import dagster as dg

import assets.depot
from assets.depot import capture_days, depot_fleet_rollup, depot_frames, depot_index, rule_yield
from edge_agent.lake import Lake
from flywheel.depot.config import DepotConfig
from resources.deployments import Deployment
from resources.encoder import EncoderResource
from resources.index import IndexResource
from resources.lake import LakeResource

depot_ingest_job = dg.define_asset_job(
    "depot_ingest_job", selection=dg.AssetSelection.assets(depot_frames, depot_index, depot_fleet_rollup),
    partitions_def=capture_days,
    description="Ingest one capture day, update the search index and the fleet rollup.")


def evaluate_landing(context: dg.SensorEvaluationContext, lake: LakeResource,
                     config: DepotConfig | None = None, now: float | None = None) -> dg.SensorResult:
    """One tick: list after the cursor, register the days, request one run per day with a run key."""
    from flywheel.depot.landing import LandingCursor, scan_landing

    the_lake = lake.lake()
    scan = scan_landing(the_lake, LandingCursor.from_json(context.cursor),
                        now=time.time() if now is None else now, config=config)
    _quarantine_unroutable(context, the_lake, scan.unroutable)
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


def _quarantine_unroutable(context: dg.SensorEvaluationContext, the_lake: Lake, keys: list[str]) -> None:
    """No capture day -> no partition to report these in: quarantine and log them here."""
    from flywheel.depot.landing import why_unroutable
    from flywheel.depot.quarantine import quarantine

    for key in keys:
        reason, detail = why_unroutable(key)
        rej = quarantine(the_lake, key, reason, detail)
        context.log.warning(f"quarantined {key!r}: {rej.reason}: {rej.detail}")


def evaluate_sweep(context: dg.SensorEvaluationContext, lake: LakeResource, now: datetime | None = None,
                   config: DepotConfig | None = None) -> dg.SensorResult:
    """One slice of a rolling full pass over landing/clips/ (`plan_sweep`): any day holding an
    object no run has covered yet gets a run, however old the day. This catches what the arrival
    stream misses: devices that write no markers, markers that sort behind the cursor (a slow clock,
    a retried put), clips whose sidecar never came (quarantined after the timeout)."""
    from edge_agent.contract.layout import LANDING_CLIPS
    from flywheel.depot.landing import SweepCursor, plan_sweep

    config = config or DepotConfig()
    now = now or datetime.now(UTC)
    cursor = SweepCursor.from_json(context.cursor)
    the_lake = lake.lake()
    plan = plan_sweep(the_lake.list(LANDING_CLIPS, start_after=cursor.after, limit=config.max_keys_per_tick),
                      cursor, now=now.timestamp(), limit=config.max_keys_per_tick,
                      settle_s=config.pending_timeout_s)
    _quarantine_unroutable(context, the_lake, plan.unroutable)
    days = sorted(plan.days)
    return dg.SensorResult(
        run_requests=[dg.RunRequest(run_key=plan.days[d], partition_key=d,
                                    tags={"depot/day": d, "depot/sweep": "true"}) for d in days],
        dynamic_partitions_requests=[capture_days.build_add_request(days)] if days else [],
        cursor=plan.cursor.to_json())


@dg.sensor(job=depot_ingest_job, minimum_interval_seconds=120, default_status=dg.DefaultSensorStatus.RUNNING,
           description="Rolling full pass over landing/clips/ (a bounded slice per tick, a watermark "
                       "per day): late markers, devices without markers, incomplete-clip timeouts.")
def landing_sweep_sensor(context: dg.SensorEvaluationContext, lake: LakeResource) -> dg.SensorResult:
    return evaluate_sweep(context, lake)


rule_yield_job = dg.define_asset_job(
    "rule_yield_job", selection=dg.AssetSelection.assets(rule_yield), partitions_def=capture_days,
    description="Recompute a capture day's per-rule yield (labels accepted per MB uploaded).")


@dg.asset_sensor(asset_key=dg.AssetKey("merged_labels"), job=rule_yield_job,
                 default_status=dg.DefaultSensorStatus.RUNNING,
                 description="A day's merged labels changed -> recompute that day's per-rule yield.")
def rule_yield_sensor(context: dg.SensorEvaluationContext, asset_event: dg.EventLogEntry):
    mat = asset_event.asset_materialization
    if mat is None or mat.partition is None:
        return None
    return dg.RunRequest(run_key=f"rule-yield:{mat.partition}:{asset_event.storage_id}",
                         partition_key=mat.partition)


depot_reindex_job = dg.define_asset_job(
    "depot_reindex_job", selection=dg.AssetSelection.assets(depot_index), partitions_def=capture_days,
    description="Embed past capture days again with the current frame encoder (after a release).")


def evaluate_reindex(context: dg.SensorEvaluationContext, lake: LakeResource, index: IndexResource,
                     encoder: EncoderResource, max_days: int = 7) -> dg.SensorResult:
    """One tick: the days indexed under an earlier encoder (newest first, `max_days` a tick) get a
    depot_index run each with today's encoder, one run key per (encoder table, day)."""
    from flywheel.depot.embed import EncoderError, encoder_id
    from flywheel.depot.index import read_current, reindex_days

    the_lake = lake.lake()
    if read_current(the_lake) is None:
        return dg.SensorResult(skip_reason="no Depot index yet")
    try:
        spec = encoder.spec(the_lake)
    except EncoderError as e:
        return dg.SensorResult(skip_reason=str(e))
    table = "frames_" + encoder_id(spec)
    days = reindex_days(the_lake, spec, index.location(the_lake), limit=max_days)
    if not days:
        return dg.SensorResult(skip_reason=f"every indexed day is in {table}")
    context.log.info(f"re-indexing {len(days)} day(s) into {table}: {', '.join(days)}")
    return dg.SensorResult(run_requests=[
        dg.RunRequest(run_key=f"reindex:{table}:{d}", partition_key=d,
                      tags={"depot/day": d, "depot/reindex": table})  # one run per day at a time
        for d in days])


@dg.sensor(job=depot_reindex_job, minimum_interval_seconds=300, default_status=dg.DefaultSensorStatus.RUNNING,
           description="After a release moves the frame encoder to the new production model, embeds "
                       "the history again into its index table, newest day first, so search, review "
                       "grouping of backlog frames and audits over past days use one encoder.")
def depot_reindex_sensor(context: dg.SensorEvaluationContext, lake: LakeResource, index: IndexResource,
                         encoder: EncoderResource) -> dg.SensorResult:
    return evaluate_reindex(context, lake, index, encoder)


def defs(deployment: Deployment) -> dg.Definitions:
    """Everything of the Depot stage for one deployment (see flywheel/definitions.py)."""
    return dg.Definitions(
        assets=dg.load_assets_from_modules([assets.depot]),
        asset_checks=dg.load_asset_checks_from_modules([assets.depot]),
        jobs=[depot_ingest_job, depot_reindex_job, rule_yield_job],
        sensors=[landing_clips_sensor, landing_sweep_sensor, depot_reindex_sensor, rule_yield_sensor],
        resources=deployment.pick("lake", "index", "encoder"))
