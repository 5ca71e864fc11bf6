"""The Federated stage (issue 17): one Flower round per schedule tick or on demand, then the same
evaluation, gate and release as the centralised loop. Off by default (the schedule starts
stopped): a fleet opts in by running devices in `upload.mode = "updates"` with a [federated] server."""

from __future__ import annotations

import dagster as dg

import assets.federated
from resources.deployments import Deployment

federated_round_job = dg.define_asset_job(
    "federated_round_job", selection=dg.AssetSelection.groups(assets.federated.GROUP),
    description="A federated round (Flower server, FedAvg over device head updates), then evaluation, "
                "the blocking gate and the TUF release of the candidate it yields.")

daily_federated_round = dg.ScheduleDefinition(
    name="daily_federated_round", job=federated_round_job,
    cron_schedule="0 2 * * *",  # nightly, when carts are docked and charging
    execution_timezone="UTC", default_status=dg.DefaultScheduleStatus.STOPPED)


def defs(deployment: Deployment) -> dg.Definitions:
    """Everything of the Federated stage for one deployment (see flywheel/definitions.py)."""
    return dg.Definitions(
        assets=dg.load_assets_from_modules([assets.federated]),
        asset_checks=dg.load_asset_checks_from_modules([assets.federated]),
        jobs=[federated_round_job], schedules=[daily_federated_round],
        # "signer" is the release stage's resource (jobs/release.py): one object per key in the merge
        resources=deployment.pick("lake", "ref_io_manager"))
