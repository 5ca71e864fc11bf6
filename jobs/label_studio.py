"""Label stage, human review in Label Studio and the audit: the pull sensor and the audit job.
`jobs/label.py` adds these to the stage's defs."""

from __future__ import annotations

import dagster as dg

from assets.depot import capture_days
from assets.label_audit import label_audit
from resources.index import IndexResource
from resources.labelstudio import LabelStudioResource
from resources.lake import LakeResource

label_audit_job = dg.define_asset_job(
    "label_audit_job", selection=dg.AssetSelection.assets(label_audit), partitions_def=capture_days,
    description="Audit one capture day's merged labels; backfill it over history (never changes a label).")


def evaluate_studio_pull(context: dg.SensorEvaluationContext, lake: LakeResource, index: IndexResource,
                         labelstudio: LabelStudioResource) -> dg.SensorResult:
    """One tick: for each day with a Label Studio project, land the annotations submitted since the
    last pull in landing/corrections/, then file them and ask for the merges, as the corrections
    sensor does (both may run: a batch is filed once)."""
    from flywheel.depot.index import frame_tables
    from flywheel.label.corrections import index_frame_days
    from flywheel.label.studio import STUDIO, StudioError, StudioUnavailable, day_catalog, pull_day

    the_lake = lake.lake()
    days = sorted({i.key.split("date=", 1)[1].split("/", 1)[0] for i in the_lake.list(STUDIO)
                   if i.key.endswith("/project.json")})
    if not days:
        return dg.SensorResult(skip_reason="no Label Studio project yet (flywheel label push)")
    try:
        tables = frame_tables(the_lake, index.location(the_lake))
    except LookupError as e:
        return dg.SensorResult(skip_reason=f"pull waits for the Depot index: {e}")
    client = labelstudio.client()
    landed = 0
    for day in days:
        try:
            r = pull_day(the_lake, day, client, day_catalog(the_lake, day), index_frame_days(tables))
        except StudioUnavailable as e:  # the server is down: try again next tick, nothing changed
            return dg.SensorResult(skip_reason=str(e))
        except StudioError as e:
            context.log.warning(f"{day}: {e}")
            continue
        landed += r.annotations
        for reason, n in r.quarantined.items():
            context.log.warning(f"{day}: {n} annotation(s) quarantined: {reason}")
    context.log.info(f"{landed} annotation(s) landed from {len(days)} project(s)")
    from jobs.label import evaluate_corrections  # the stage module imports this one

    return evaluate_corrections(context, lake, index)


@dg.sensor(job_name="merged_labels_job", minimum_interval_seconds=60,
           default_status=dg.DefaultSensorStatus.STOPPED,
           description="Pulls submitted Label Studio annotations of every pushed review batch into "
                       "landing/corrections/, files them and asks for the merges. Off by default: turn it on "
                       "once LABEL_STUDIO_URL and LABEL_STUDIO_API_KEY name a server (make labelstudio).")
def label_studio_sensor(context: dg.SensorEvaluationContext, lake: LakeResource, index: IndexResource,
                        labelstudio: LabelStudioResource) -> dg.SensorResult:
    return evaluate_studio_pull(context, lake, index, labelstudio)


def labelstudio_resource() -> LabelStudioResource:
    return LabelStudioResource(url=dg.EnvVar("LABEL_STUDIO_URL"), api_key=dg.EnvVar("LABEL_STUDIO_API_KEY"))
