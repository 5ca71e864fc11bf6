"""The Dagster code location. It only assembles the stages, for the deployment chosen by
FLYWHEEL_DEPLOYMENT (local | cluster, see resources/deployments.py).

How to add a stage (the convention every stage follows):

1. `assets/<stage>.py`: the stage's assets and asset checks, thin calls into `flywheel/<stage>/`.
   An asset that hands a thing downstream returns a typed reference (`flywheel.refs`: DatasetRef,
   ModelRef, ...) with `io_manager_key="ref_io_manager"`, and the downstream asset takes it as an
   input named after the upstream asset: lineage travels through Dagster, never a "latest" pointer.
2. `jobs/<stage>.py`: the stage's jobs, schedules and sensors, and one function

       def defs(deployment: Deployment) -> dg.Definitions:
           return dg.Definitions(
               assets=dg.load_assets_from_modules([assets.<stage>]),
               asset_checks=dg.load_asset_checks_from_modules([assets.<stage>]),
               jobs=[...], schedules=[...], sensors=[...],
               resources={**deployment.pick("lake", ...),            # shared: same object for all
                          "labeler": ... if deployment.name == "cluster" else ...})  # its own

3. one line in STAGES below.

Shared resources (lake, ray, index, encoder, ref_io_manager) are defined once per deployment in
resources/deployments.py; `deployment.pick` hands every stage the same objects, so the stages'
Definitions merge. A resource only one stage needs is built in that stage's module.
"""

from __future__ import annotations

import dagster as dg

import jobs.depot
import jobs.federated
import jobs.label
import jobs.learner
import jobs.loop
import jobs.release
from resources.deployments import Deployment

# One line per stage. (Import modules, not their `defs`: a second Definitions object at module
# scope here would break code loading.)
STAGES = (jobs.depot, jobs.learner, jobs.label, jobs.release, jobs.loop, jobs.federated)


def build_definitions(deployment: str | None = None) -> dg.Definitions:
    the_deployment = Deployment(deployment)
    return dg.Definitions.merge(*(stage.defs(the_deployment) for stage in STAGES),
                                dg.Definitions(executor=the_deployment.executor))


defs = build_definitions()
