"""One turn of the loop on the cluster deployment, on real engines: `python -m jobs.demo
--deployment cluster` (what `make demo-cluster` runs) with the lake and LanceDB on SeaweedFS S3, the
Dagster instance on PostgreSQL, and training on a Ray worker started by `ray start` (by address).
Tiny: turn 0 (the bootstrap model) and one fleet turn of 2 carts x 0.3 min, 1 epoch. The turn
record the demo writes is checked against the S3 lake and the Postgres instance."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import dagster as dg
import pytest

from tests.test_demo import TINY, _meta, check_turn

# ten minutes here (two trainings on the Ray worker): with the other whole-system runs (make test-e2e)
pytestmark = [pytest.mark.slow, pytest.mark.integration, pytest.mark.e2e, pytest.mark.timeout(3600)]

ROOT = Path(__file__).resolve().parents[2]


def test_one_turn_on_the_cluster_deployment(seaweed, pg_server, pg_home, pg_instance,
                                            tmp_path: Path) -> None:
    from flywheel.devstack.ray_nodes import ray_nodes
    from flywheel.loop.turns import read_turns
    from jobs.cluster_env import TRAIN_CPUS, cluster_lake, cluster_settings, release_secrets

    env = cluster_settings(seaweed.env(), seaweed.bucket, pg_server.env(), pg_home, "cluster-turn")
    lake = cluster_lake(env)
    env.update(release_secrets(lake, tmp_path / "release_keys"))
    with ray_nodes(workers=1, worker_cpus=TRAIN_CPUS, worker_resources=[{"train": 1.0}],
                   extra_env=env) as nodes:
        train_node = next(n["NodeID"] for n in nodes.nodes() if "train" in n["Resources"])
        run = subprocess.run(
            [sys.executable, "-m", "jobs.demo", "--deployment", "cluster", "--turns", "1", *TINY,
             "--out", str(tmp_path / "demo")], cwd=ROOT, env={**os.environ, **nodes.env},
            capture_output=True, text=True, timeout=3000)
    text = run.stdout
    assert run.returncode == 0, text[-4000:] + run.stderr[-4000:]
    assert f"deployment: cluster (Ray {nodes.address})" in text
    assert "=== The wheel, turn by turn" in text

    boot, turn = read_turns(lake)  # the records live in the S3 lake
    assert boot.turn == 0 and boot.shipped and turn.turn == 1
    check_turn(pg_instance, lake, boot, turn, text)  # every run of the turn is in PostgreSQL
    index = _meta(pg_instance, "depot_index", turn.day)
    assert index["rows_day"] > 0  # LanceDB on S3
    assert any(o.key.endswith(".lance") for o in lake.list("depot/index"))  # its files, on S3
    model = _meta(pg_instance, "candidate_model")
    # trained on the Ray cluster's worker that carries `train`, not in the driver
    assert model["ran_on"].startswith(f"ray:{train_node[:8]}/")
    assert model["ray_cluster"] == f"RayClusterAddress({nodes.address})"
    # the blocking gate's decision on this turn's candidate, as the instance recorded it
    (gate,) = pg_instance.event_log_storage.get_asset_check_execution_history(
        dg.AssetCheckKey(dg.AssetKey("candidate_evaluation"), "release_gate"), limit=1)
    assert gate.event.dagster_event.event_specific_data.passed == turn.shipped
