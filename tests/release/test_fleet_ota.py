"""(9) The fleet simulator runs the real updater in every cart: a release published to a canary
cohort reaches exactly that cohort over the air (the rest keep the factory model), carts probe it on
live frames and commit, and their status reports (V2) say so."""

from __future__ import annotations

import pytest

from edge_agent.contract.release import RolloutStage, cohort_point
from flywheel.release.keys import load_keys
from flywheel.release.publish import publish_release
from flywheel.release.repository import open_channel
from flywheel.release.rollout import read_reports
from tests.support.ota import release_files


@pytest.mark.slow
def test_fleet_takes_a_canary_release_over_the_air(local_lake, keys_dir, tmp_path):
    from flywheel.fleet import simulate_fleet
    from flywheel.fleet.bootstrap import INPUT_HW
    from flywheel.sim import default_world

    repo = open_channel(local_lake, "stable", load_keys(keys_dir))
    labels = ["none", *(p.ean for p in default_world(0, 3).catalog.products)]
    files = release_files(5, "m-5")
    # the released model must know the fleet's labels: rebuild its card for this world
    import json

    from flywheel.fleet.bootstrap import build_classifier_onnx
    from tests.support.ota import golden_for

    onnx_bytes = build_classifier_onnx(labels, seed=5)
    card = json.loads(files["model.json"])
    card.update(labels=labels, input_size=list(INPUT_HW))
    files = {"model.onnx": onnx_bytes, "model.json": json.dumps(card).encode(),
             "golden.npz": golden_for(onnx_bytes)}
    ch = publish_release(repo, "cls-5", files, RolloutStage(stage="canary", percent=50))
    s = simulate_fleet(local_lake, carts=4, minutes=0.2, seed=3, day="2026-11-22",
                       work_dir=tmp_path / "fleet", progress=False)
    canary = {d for d in s.devices if cohort_point(d, ch.release.release_id) < 50}
    assert 0 < len(canary) < len(s.devices)  # both cohorts present (deterministic ids)
    assert {d for d, v in s.models.items() if v == "m-5"} == canary
    assert {d for d, v in s.models.items() if v == "bootstrap-0"} == set(s.devices) - canary
    assert all(s.ota[d] == "active" for d in canary), s.ota
    assert s.reconciles() and s.uploaded > 0
    reports = read_reports(local_lake).reports
    final = {r.device_id: r for r in sorted(reports, key=lambda r: r.reported_at)}
    assert {d for d, r in final.items() if r.ota and r.ota.state == "active"
            and r.ota.release_id == ch.release.release_id} == canary
    assert all(r.health.predictions <= r.frames_processed for r in reports)
