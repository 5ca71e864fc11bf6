"""Shadow mode: a device in the shadow cohort fetches the candidate through the real TUF client,
validates it on its golden set, runs it beside production on the same frames without acting on it,
counts agreement, and a `shadow_disagreement` rule captures the frames where they differ."""

from __future__ import annotations

import numpy as np

from edge_agent.contract.release import RolloutStage, cohort_point
from edge_agent.model import DeviceModel
from edge_agent.triggers import build_rule_set
from edge_agent.triggers.signals import SignalFrame
from flywheel.release.keys import keygen, load_keys
from flywheel.release.publish import publish_release
from flywheel.release.repository import open_channel
from tests.edge_agent.conftest import scripted_frames
from tests.support.ota import SimDevice, release_files


def test_shadow_disagreement_rule():
    rules = build_rule_set("s1", {"shadow": "shadow_disagreement"})
    assert rules.signals == frozenset({"shadow"})
    fired = rules.evaluate(SignalFrame(prediction="A", shadow_ran=True, shadow_prediction="B"))
    assert [(r.name, v) for r, v in fired] == [("shadow", "shadow=B model=A")]
    assert rules.evaluate(SignalFrame(prediction="A", shadow_ran=True, shadow_prediction="A")) == []
    assert rules.evaluate(SignalFrame(prediction="A")) == []  # no shadow model: never fires


def test_shadow_cohort_runs_candidate_beside_production(tmp_path, local_lake, make_agent):
    keygen(tmp_path / "keys")
    repo = open_channel(local_lake, "stable", load_keys(tmp_path / "keys"))
    publish_release(repo, "cls-1", release_files(1, "m-1"), RolloutStage(stage="full", percent=100))
    root = local_lake.get("releases/stable/metadata/1.root.json")
    cand = publish_release(repo, "cls-2", release_files(2, "m-2"),
                           RolloutStage(stage="shadow", percent=0, shadow_percent=50))
    ids = [f"cart-{i:03d}" for i in range(40)]
    in_shadow = next(d for d in ids if cohort_point(d, cand.release.release_id) >= 50)
    outside = next(d for d in ids if cohort_point(d, cand.release.release_id) < 50)
    for device_id, expect_shadow in ((in_shadow, True), (outside, False)):
        d = SimDevice(device_id, tmp_path / device_id)
        d.install_factory()
        up = d.updater(local_lake, "stable", root)
        assert up.check() == "probing", up.rec.detail
        assert up.probe() == "active"  # production: m-1
        assert d.running_version() == "m-1"
        assert (up.shadow is not None) == expect_shadow
    assert up.status().shadow_release_id is None
    d = SimDevice(in_shadow, tmp_path / in_shadow)
    up = d.updater(local_lake, "stable", root)
    assert up.check() == "active" and up.shadow.release_id == cand.release.release_id
    assert up.status().shadow_release_id == cand.release.release_id
    assert d.running_version() == "m-1"  # shadow never becomes the acting model

    agent = make_agent(local_lake, rules=build_rule_set("s1", {"shadow": "shadow_disagreement"}),
                       device_id=in_shadow, start=False)
    agent.model = DeviceModel(d.model_dir)
    agent.shadow = DeviceModel(up.shadow_dir)
    firings = [f for frame in scripted_frames(30, {range(5, 25): {"moving": True}})
               for f in agent.process(frame)]
    t = agent.telemetry.totals
    assert t.shadow_frames == 30 and 0 <= t.shadow_agree <= 30
    assert len(firings) == 30 - t.shadow_agree  # one capture trigger per disagreeing frame
    prod, cand_model = agent.model, agent.shadow
    img = np.zeros((48, 64, 3), np.uint8)
    assert (prod.version, cand_model.version) == ("m-1", "m-2") and prod.predict(img) is not None
