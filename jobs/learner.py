"""The Learner stage (Train): its assets (assets/learner.py), the job and its weekly schedule:
import -> dataset -> train (Ray) -> evaluate -> gate."""

from __future__ import annotations

import dagster as dg

import assets.learner
from jobs.instance import TRAINING_TAG
from resources.deployments import Deployment

train_and_evaluate = dg.define_asset_job(
    "train_and_evaluate",
    selection=dg.AssetSelection.groups("learner"),
    tags={TRAINING_TAG: "true"},  # dagster.yaml's run queue: one training at a time
    description="Build the dataset version, train a candidate on Ray, evaluate it on the frozen "
                "standard sets and run the blocking release gate.",
)

weekly_training = dg.ScheduleDefinition(
    name="weekly_train_and_evaluate",
    job=train_and_evaluate,
    cron_schedule="0 3 * * 1",  # Mondays 03:00 UTC: a week of corrections in, a release by midweek
    execution_timezone="UTC",
    default_status=dg.DefaultScheduleStatus.RUNNING,
)

def defs(deployment: Deployment) -> dg.Definitions:
    """Everything of the Learner stage for one deployment (see flywheel/definitions.py)."""
    return dg.Definitions(
        assets=dg.load_assets_from_modules([assets.learner]),
        asset_checks=dg.load_asset_checks_from_modules([assets.learner]),
        jobs=[train_and_evaluate], schedules=[weekly_training],
        resources=deployment.pick("lake", "ray", "ref_io_manager"))
