"""The Dagster UI serves this code location: what `make ui` gives a user, checked over GraphQL."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.support.dagster_ui import webserver, write_instance_yaml

QUERY = """{ assetNodes { assetKey { path } groupName isPartitioned }
  repositoriesOrError { ... on RepositoryConnection { nodes { name
    jobs { name } sensors { name } schedules { name cronSchedule } } } } }"""


@pytest.mark.slow
@pytest.mark.integration
def test_ui_shows_the_loop_assets_jobs_sensors_and_schedule(tmp_path: Path) -> None:
    home = tmp_path / "dagster_home"
    write_instance_yaml(home)
    with webserver(home, {"FLYWHEEL_LAKE_ROOT": str(tmp_path / "lake")}) as servers:
        data = servers.graphql(QUERY)
    assets = {"/".join(n["assetKey"]["path"]): n for n in data["assetNodes"]}
    assert {"depot_frames", "depot_index", "label_candidates", "prelabels", "review_queue",
            "merged_labels", "dataset_version", "candidate_model", "candidate_evaluation",
            "release"} <= set(assets)
    assert assets["depot_frames"]["isPartitioned"] and assets["depot_frames"]["groupName"] == "depot"
    (repo,) = data["repositoriesOrError"]["nodes"]
    assert {"depot_ingest_job", "train_and_evaluate", "prelabel_job", "release_job"} <= {
        j["name"] for j in repo["jobs"]}
    assert {"landing_clips_sensor", "corrections_sensor", "health_gate_sensor"} <= {
        s["name"] for s in repo["sensors"]}
    # the weekly loop, the release timestamps re-signed every 4 hours, the daily federated round
    assert {s["cronSchedule"] for s in repo["schedules"]} == {"0 3 * * 1", "17 */4 * * *", "0 2 * * *"}
