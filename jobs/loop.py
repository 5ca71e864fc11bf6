"""The loop as one graph: after a capture day is ingested, the Label stage runs on it (filter,
pre-label, review queue); people's corrections come back through the corrections sensor; the weekly
schedule trains, gates and evaluates (jobs/learner.py); a successful training releases
(jobs/release.py); status reports judge the rollout. This module adds the hand-off from ingest to
Label and the per-turn figures (assets/loop.py)."""

from __future__ import annotations

import dagster as dg

import assets.loop
from assets.depot import capture_days
from assets.label import label_candidates, prelabels
from assets.label_review import review_queue
from jobs.depot import depot_ingest_job
from resources.deployments import Deployment

label_day_job = dg.define_asset_job(
    "label_day_job", selection=dg.AssetSelection.assets(label_candidates, prelabels, review_queue),
    partitions_def=capture_days,
    description="Label one ingested capture day: empty filter, pre-label ensemble, review routing.")

flywheel_turns_job = dg.define_asset_job(
    "flywheel_turns_job", selection=dg.AssetSelection.assets(assets.loop.flywheel_turns),
    description="Refresh the per-turn figures of the loop.")


@dg.run_status_sensor(run_status=dg.DagsterRunStatus.SUCCESS, monitored_jobs=[depot_ingest_job],
                      request_job=label_day_job, default_status=dg.DefaultSensorStatus.RUNNING,
                      description="A capture day was ingested: label it (filter, pre-label, queue).")
def label_after_ingest(context: dg.RunStatusSensorContext):
    run = context.dagster_run
    day = run.tags.get("dagster/partition")
    if not day:
        return dg.SkipReason(f"run {run.run_id} has no capture day")
    return dg.RunRequest(run_key=f"label:{run.run_id}", partition_key=day,
                         tags={"label/after_ingest": run.run_id})


def defs(deployment: Deployment) -> dg.Definitions:
    return dg.Definitions(
        assets=dg.load_assets_from_modules([assets.loop]),
        jobs=[label_day_job, flywheel_turns_job], sensors=[label_after_ingest],
        resources=deployment.pick("lake"))
