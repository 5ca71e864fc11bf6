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
    assert doc.model_version == "bootstrap-0" and doc.rule_set_version == "fleet-default-2"
    # every sidecar is V2: the carts decided insertions and wrote those closed within each clip (and
    # one still open at a clip's end, marked so: it may close in a later clip or not at all)
    docs = [parse_sidecar(s3_lake.get(k)) for k in keys]
    assert {d.schema_version for d in docs} == {2} and s.insertions > 0
    assert 0 < sum(not i.ended_after_clip for d in docs for i in d.insertions) <= s.insertions
    assert all(i.last_frame == d.clip.frame_count - 1
               for d in docs for i in d.insertions if i.ended_after_clip)
    assert s.fires.get("uncertain", 0) == s.insertions_low_confidence  # once per uncertain insertion
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
    assert list(lake.rglob("device=cart-A-000/date=2026-11-21/store=A/*.mp4"))


def test_fleet_runs_the_registrys_production_model(local_lake, tmp_path: Path) -> None:
    """Once the registry has a production model, the carts run it (the loop's Deploy -> Collect)."""
    from edge_agent.contract.schemas import DeviceModelV1
    from flywheel.fleet import simulate_fleet
    from flywheel.fleet.bootstrap import INPUT_HW, MEAN, STD, build_classifier_onnx
    from flywheel.sim import default_world
    from tests.support.registry import register_model

    labels = ["empty", *(p.ean for p in default_world(0, 3).catalog.products)]
    onnx_bytes = build_classifier_onnx(labels, seed=7)
    register_model(local_lake, "cls-test-1", {"model.onnx": onnx_bytes}, classes=labels,
                   device=DeviceModelV1(model_version="cls-test-1", labels=labels,
                                        input_size=list(INPUT_HW), mean=[MEAN] * 3, std=[STD] * 3),
                   production=True)

    s = simulate_fleet(local_lake, carts=1, minutes=0.3, seed=2, day="2026-11-21",
                       work_dir=tmp_path / "fleet", progress=False)
    assert s.model_version == "cls-test-1" and s.uploaded > 0
    sidecars = [o.key for o in local_lake.list("landing/clips") if o.key.endswith(".json")]
    assert {parse_sidecar(local_lake.get(k)).model_version for k in sidecars} == {"cls-test-1"}

    # A registry file that does not match its card is refused, not run.
    local_lake.put("models/cls-test-1/model.onnx", onnx_bytes[:-1] + b"\x00")
    with pytest.raises(Exception, match="sha256"):
        simulate_fleet(local_lake, carts=1, minutes=0.1, seed=2, day="2026-11-21",
                       work_dir=tmp_path / "fleet2", progress=False)
