"""The Dagster UI serves this code location: what `make ui` gives a user, checked over GraphQL."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
QUERY = """{ assetNodes { assetKey { path } groupName isPartitioned }
  repositoriesOrError { ... on RepositoryConnection { nodes { name
    jobs { name } sensors { name } schedules { name cronSchedule } } } } }"""


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _graphql(port: int, query: str) -> dict:
    req = urllib.request.Request(f"http://127.0.0.1:{port}/graphql",
                                 data=json.dumps({"query": query}).encode(),
                                 headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=30) as resp:
        return json.loads(resp.read())["data"]


@pytest.mark.slow
@pytest.mark.integration
def test_ui_shows_the_loop_assets_jobs_sensors_and_schedule(tmp_path: Path) -> None:
    port = _free_port()
    env = {**os.environ, "DAGSTER_HOME": str(tmp_path), "FLYWHEEL_LAKE_ROOT": str(tmp_path / "lake")}
    (tmp_path / "dagster.yaml").write_text("telemetry:\n  enabled: false\n")
    # Its own session: the webserver and its code-server children stop together.
    proc = subprocess.Popen([sys.executable, "-m", "dagster_webserver", "-w", "workspace.yaml",
                             "-h", "127.0.0.1", "-p", str(port)], cwd=ROOT, env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            start_new_session=True)
    try:
        deadline = time.monotonic() + 180
        data = None
        while time.monotonic() < deadline and data is None:
            assert proc.poll() is None, "dagster-webserver exited"
            try:
                data = _graphql(port, QUERY)
            except (OSError, KeyError):
                time.sleep(1)
        assert data is not None, "the UI did not answer in time"
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
        # the weekly loop, and the release timestamps re-signed every 4 hours
        assert {s["cronSchedule"] for s in repo["schedules"]} == {"0 3 * * 1", "17 */4 * * *", "0 2 * * *"}
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
