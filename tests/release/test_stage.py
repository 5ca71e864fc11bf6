"""The release stage: the gate re-checked on the exact model, first release straight to full,
later ones from the first rollout stage, production.json moved only when a release reaches full."""

from __future__ import annotations

import pytest

from flywheel.learner import registry
from flywheel.release.health import GateConfig
from flywheel.release.keys import load_keys
from flywheel.release.publish import current_channel
from flywheel.release.repository import open_channel
from flywheel.release.rollout import step
from flywheel.release.stage import ReleaseRefused, release_model
from tests.support.ota import register_model, release_files


def test_release_stage_rechecks_gate_and_moves_production_only_at_full(local_lake, keys_dir):
    keys = load_keys(keys_dir)
    register_model(local_lake, "cls-a", release_files(1, "m-a"), gate_passed=True)
    first = release_model(local_lake, keys, "stable", "cls-a")
    assert first.published and first.production_moved
    assert (first.channel.rollout.stage, first.channel.rollout.percent) == ("full", 100.0)
    assert registry.production_model_id(local_lake) == "cls-a"
    assert not release_model(local_lake, keys, "stable", "cls-a").published  # idempotent

    register_model(local_lake, "cls-bad", release_files(2, "m-bad"), gate_passed=False,
                   production_id="cls-a")
    with pytest.raises(ReleaseRefused, match="failed its gate"):
        release_model(local_lake, keys, "stable", "cls-bad")
    register_model(local_lake, "cls-stale", release_files(3, "m-stale"), gate_passed=True,
                   production_id=None)  # judged before cls-a became production
    with pytest.raises(ReleaseRefused, match="re-run the gate"):
        release_model(local_lake, keys, "stable", "cls-stale")

    register_model(local_lake, "cls-b", release_files(4, "m-b"), gate_passed=True,
                   production_id="cls-a")
    second = release_model(local_lake, keys, "stable", "cls-b")
    assert second.channel.rollout.stage == "shadow" and not second.production_moved
    assert second.channel.previous.model_id == "cls-a"
    repo = open_channel(local_lake, "stable", keys, create=False)
    # No reports: the gate holds (not enough data), nothing moves.
    held = step(repo, [], GateConfig())
    assert held.decision.action == "hold" and held.after == held.before
    assert held.decision.reasons == [] and held.decision.waiting  # why it holds, check by check
    # With the minimums at zero every stage advances; production moves at full, not before.
    easy = GateConfig(min_barcode_checks=0, min_frames=0, min_shadow_frames=0,
                      min_shadow_agreement=0.0)
    seen = []
    while (res := step(repo, [], easy)) is not None:
        seen.append((res.after.rollout.stage, res.after.rollout.percent))
        assert registry.production_model_id(local_lake) == ("cls-b" if res.promoted else "cls-a") \
            or seen[-1][0] == "full"
    assert seen == [("canary", 5.0), ("ramp", 25.0), ("ramp", 50.0), ("full", 100.0)]
    assert registry.production_model_id(local_lake) == "cls-b"
    assert current_channel(repo).release.model_id == "cls-b"
