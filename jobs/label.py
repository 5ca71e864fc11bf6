"""The Label stage: its pre-label assets (assets/label.py) and the per-day pre-label job."""

import dagster as dg

from assets.depot import capture_days
from assets.label import label_candidates, prelabels
from resources.deployments import Deployment
from resources.labelers import LabelersResource

prelabel_job = dg.define_asset_job(
    "prelabel_job", selection=dg.AssetSelection.assets(label_candidates, prelabels),
    partitions_def=capture_days,
    description="Filter the empty frames of one capture day and pre-label the rest.")


def defs(deployment: Deployment) -> dg.Definitions:
    return dg.Definitions(
        assets=[label_candidates, prelabels],  # their checks are declared on the assets
        jobs=[prelabel_job],
        resources={**deployment.pick("lake", "encoder"),
                   # no VLM checkpoint ships with the code: set vlm_checkpoint in the launchpad or here
                   "labelers": LabelersResource()})
