"""`make demo`'s program, run as a user runs it: a subprocess on a fresh lake and Dagster instance."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.slow
def test_demo_turns_the_loop_once(tmp_path: Path) -> None:
    env = {**os.environ, "DAGSTER_HOME": str(tmp_path / "dagster_home"),
           "FLYWHEEL_LAKE_ROOT": str(tmp_path / "lake"), "FLYWHEEL_DEPLOYMENT": "local"}
    out = subprocess.run(
        [sys.executable, "-m", "jobs.demo", "--carts", "2", "--minutes", "0.4", "--epochs", "1",
         "--out", str(tmp_path / "demo")],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=900)
    text = out.stdout
    assert out.returncode == 0, text[-3000:] + out.stderr[-3000:]
    assert (tmp_path / "demo" / "sim_preview.png").stat().st_size > 10_000
    assert "Not built yet" in text
    assert "release r000002-" in text and "full 100%" in text  # the first release: straight to full
    assert "check release.gate_rechecked: PASSED" in text

    # Collect: what the summary says is what landed
    fleet = re.search(r"fleet: 2 cart\(s\), 0.4 simulated minute\(s\), (\d+) session\(s\), (\d+) frames",
                      text)
    counts = re.search(r"captured (\d+)  uploaded (\d+) .*still spooled (\d+)", text)
    assert fleet and counts and "counts reconcile: True" in text, text[:3000]
    assert int(fleet.group(2)) > 0
    uploaded = int(counts.group(2))
    lake_dir = tmp_path / "lake"
    assert uploaded > 0 and len(list((lake_dir / "landing" / "clips").rglob("*.mp4"))) == uploaded

    import dagster as dg

    from edge_agent.lake import Lake
    from flywheel.learner import registry

    lake = Lake.at_path(lake_dir)
    with dg.DagsterInstance.from_config(env["DAGSTER_HOME"]) as instance:
        runs = instance.get_runs()
        assert sorted(r.job_name for r in runs) == ["depot_ingest_job", "release_job",
                                                    "train_and_evaluate"]
        assert all(r.is_success for r in runs)

        def meta(key: str) -> dict:
            event = instance.get_latest_materialization_event(dg.AssetKey(key))
            return {k: v.value for k, v in event.asset_materialization.metadata.items()}

        # Manage: every uploaded clip was ingested into frames and indexed
        frames = meta("depot_frames")
        assert frames["clips_ingested"] == uploaded and frames["rejected_clips"] == 0
        assert frames["frames_written"] > 0 and frames["rows_total"] == frames["frames_written"]
        assert meta("depot_index")["rows_day"] == frames["frames_written"]
        # Train: one lineage from dataset to gate, and the gated model became production
        ds, model, ev = meta("dataset_version"), meta("candidate_model"), meta("candidate_evaluation")
        assert model["dataset_version"] == ds["version"] and model["epochs"] == 1
        assert ev["candidate"] == model["model_id"] and ev["production"] == "none"
        assert registry.read_gate(lake, model["model_id"]).passed
        # Deploy: the release stage signed that model into the channel and moved production
        rel = meta("release")
        assert rel["model_id"] == model["model_id"] and rel["stage"] == "full 100%"
        assert rel["production_moved"] is True
        assert registry.production_model_id(lake) == model["model_id"]
    assert "check candidate_evaluation.release_gate: PASSED" in text
    assert lake.exists("releases/stable/metadata/1.root.json")
