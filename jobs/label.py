"""The Label stage: filter and pre-label (assets/label.py), then review routing, the corrections
sensor and the merge (assets/label_review.py); one `defs` for the whole stage."""

from __future__ import annotations

import dagster as dg

import assets.label_audit
import assets.label_review
from assets.depot import capture_days
from assets.label import label_candidates, prelabels
from assets.label_review import merged_labels
from jobs.label_studio import label_audit_job, label_studio_sensor, labelstudio_resource
from resources.deployments import Deployment
from resources.index import IndexResource
from resources.labelers import LabelersResource
from resources.lake import LakeResource

prelabel_job = dg.define_asset_job(
    "prelabel_job", selection=dg.AssetSelection.assets(label_candidates, prelabels),
    partitions_def=capture_days,
    description="Filter the empty frames of one capture day and pre-label the rest.")

merged_labels_job = dg.define_asset_job(
    "merged_labels_job", selection=dg.AssetSelection.assets(merged_labels), partitions_def=capture_days,
    description="Merge the day's corrections into its labels (asked for by the corrections sensor).")


def evaluate_corrections(context: dg.SensorEvaluationContext, lake: LakeResource,
                         index: IndexResource) -> dg.SensorResult:
    """One tick: file what waits in landing/corrections/ (quarantining bad batches), then one
    merged_labels run per capture day the new batches touch."""
    import hashlib

    from flywheel.depot.index import frame_tables
    from flywheel.label.corrections import index_frame_days, scan_corrections

    the_lake = lake.lake()
    if not any(True for _ in the_lake.list("landing/corrections", limit=1)):
        return dg.SensorResult()
    try:
        tables = frame_tables(the_lake, index.location(the_lake))
    except LookupError as e:
        return dg.SensorResult(skip_reason=f"corrections wait for the Depot index: {e}")
    scan = scan_corrections(the_lake, index_frame_days(tables))
    for r in scan.rejections:
        context.log.warning(f"quarantined {r.key}: {r.reason}: {r.detail}")
    runs = []
    for day, batch_ids in sorted(scan.days.items()):
        digest = hashlib.blake2b(",".join(sorted(batch_ids)).encode(), digest_size=8).hexdigest()
        runs.append(dg.RunRequest(run_key=f"corrections:{day}:{digest}", partition_key=day,
                                  tags={"label/day": day, "label/batches": str(len(batch_ids))}))
    context.log.info(f"{len(scan.accepted)} batch(es) filed ({scan.corrections} corrections), "
                     f"{len(scan.rejections)} quarantined; {len(runs)} merge run(s)")
    return dg.SensorResult(run_requests=runs)


@dg.sensor(job=merged_labels_job, minimum_interval_seconds=30, default_status=dg.DefaultSensorStatus.RUNNING,
           description="Watches landing/corrections/ (CorrectionBatchV1 files and Label Studio JSON "
                       "exports): files each batch per capture day or quarantines it with its reason, "
                       "then asks for a merged_labels run of each day it touches.")
def corrections_sensor(context: dg.SensorEvaluationContext, lake: LakeResource,
                       index: IndexResource) -> dg.SensorResult:
    return evaluate_corrections(context, lake, index)


def defs(deployment: Deployment) -> dg.Definitions:
    return dg.Definitions(
        # the checks of label_candidates and prelabels are declared on the assets
        assets=[label_candidates, prelabels,
                *dg.load_assets_from_modules([assets.label_review, assets.label_audit])],
        asset_checks=dg.load_asset_checks_from_modules([assets.label_review]),
        jobs=[prelabel_job, merged_labels_job, label_audit_job],
        sensors=[corrections_sensor, label_studio_sensor],
        resources={**deployment.pick("lake", "encoder", "index", "ref_io_manager"),
                   # no VLM checkpoint ships with the code: set vlm_checkpoint in the launchpad or here
                   "labelers": LabelersResource(), "labelstudio": labelstudio_resource()})
