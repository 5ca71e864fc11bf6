"""`make demo`'s program, run as a user runs it: a subprocess on a fresh lake and Dagster instance."""

from __future__ import annotations

import os
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
    assert "counts reconcile: True" in text
    assert "ingest run for" in text and "success" in text
    assert "candidate_evaluation.release_gate:" in text
    assert "Not built yet" in text
    assert "release r000002-" in text and "full 100%" in text  # the first release: straight to full
    assert "check release.gate_rechecked: PASSED" in text
    lake = tmp_path / "lake"
    assert any((lake / "landing" / "clips").rglob("*.mp4"))
    assert any((lake / "depot").rglob("*.parquet"))
    assert any((lake / "models").glob("*/model.onnx"))
    assert (lake / "releases" / "stable" / "metadata" / "1.root.json").exists()
    assert (lake / "models" / "production.json").exists()  # moved by the release stage

    import dagster as dg

    with dg.DagsterInstance.from_config(env["DAGSTER_HOME"]) as instance:
        runs = instance.get_runs()
        assert {r.job_name for r in runs} >= {"depot_ingest_job", "train_and_evaluate", "release_job"}
        assert all(r.is_success for r in runs)
