"""The fleet runner: simulated carts (flywheel.sim) through real agents into a real lake."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from edge_agent.contract import parse_sidecar
from edge_agent.contract.layout import parse_clip_key
from tests.edge_agent.test_faults import assert_lake_complete


@pytest.mark.integration
def test_simulate_fleet_into_seaweedfs(s3_lake, tmp_path: Path) -> None:
    from flywheel.fleet import simulate_fleet

    s = simulate_fleet(s3_lake, carts=2, minutes=0.4, seed=1, day="2026-11-20",
                       work_dir=tmp_path / "fleet", progress=False)
    assert s.frames == 2 * 240 and s.sessions >= 2
    assert s.captures > 0 and s.uploaded == s.captures and s.reconciles()
    assert assert_lake_complete(s3_lake) == s.uploaded
    keys = [o.key for o in s3_lake.list("landing/clips") if o.key.endswith(".json")]
    parsed = [parse_clip_key(k) for k in keys]
    assert {p.date for p in parsed} == {"2026-11-20"}
    assert {p.device_id for p in parsed} <= {"cart-A-000", "cart-B-001"}
    doc = parse_sidecar(s3_lake.get(keys[0]))
    assert doc.model_version == "bootstrap-0" and doc.rule_set_version == "fleet-default-1"
    assert doc.weight_series and doc.location_series
    assert any(k.startswith("landing/status/device=cart-A-000/") for k in
               (o.key for o in s3_lake.list("landing/status")))


def test_fleet_cli(tmp_path: Path) -> None:
    lake = tmp_path / "lake"
    out = subprocess.run(
        [sys.executable, "-m", "flywheel.cli", "fleet", "simulate", "--carts", "1", "--minutes",
         "0.25", "--lake", lake.as_uri(), "--day", "2026-11-21", "--no-progress"],
        capture_output=True, text=True, timeout=300, env={**os.environ, "PYTHONPATH": os.getcwd()})
    assert out.returncode == 0, out.stderr[-3000:]
    assert "fleet: 1 cart(s)" in out.stdout and "counts reconcile: True" in out.stdout
    assert list(lake.rglob("date=2026-11-21/store=A/device=cart-A-000/*.mp4"))
