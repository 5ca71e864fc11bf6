"""The Dagster code location. It only assembles: assets and checks from `assets/`, each stage's
jobs, schedules and sensors (`defs` in its `jobs/` module), and the resources of the deployment
chosen by FLYWHEEL_DEPLOYMENT (see resources/deployments.py)."""

from __future__ import annotations

import dagster as dg

import assets
import jobs.depot
import jobs.learner
import jobs.release
from resources.deployments import resources_for

# One `defs` per stage module in jobs/; add a stage here when it lands.
# (import the modules, not their `defs`: a second Definitions at module scope breaks code loading)
STAGE_DEFS: list[dg.Definitions] = [jobs.depot.defs, jobs.learner.defs, jobs.release.defs]


def build_definitions(deployment: str | None = None) -> dg.Definitions:
    return dg.Definitions.merge(
        dg.Definitions(
            assets=dg.load_assets_from_package_module(assets),
            asset_checks=dg.load_asset_checks_from_package_module(assets),
            resources=resources_for(deployment),
        ),
        *STAGE_DEFS,
    )


defs = build_definitions()
