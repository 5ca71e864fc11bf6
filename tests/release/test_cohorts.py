"""A small fleet's canary is never empty by chance: the release's cohort salt, chosen from the devices
that report, splits them as the stage asks; devices compute the same cohorts through the real updater,
and a salt of 0 is the plain point (channels written before the salt read and place devices as before)."""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime

import pytest

from edge_agent.contract.errors import ContractError
from edge_agent.contract.layout import status_key
from edge_agent.contract.release import RolloutStage, cohort_point, parse_release_channel
from edge_agent.contract.schemas import dump_document
from flywheel.release.cohorts import cohort_salt, wanted_size
from flywheel.release.keys import load_keys
from flywheel.release.publish import current_channel, publish_release, set_rollout
from flywheel.release.repository import open_channel
from flywheel.release.stage import release_model
from tests.support.ota import SimDevice, register_model, release_files

CARTS = ["cart-A-000", "cart-B-001", "cart-C-002", "cart-A-003"]
EMPTY_CANARY = "r000003-cls-20261203T152341-3890ad54"  # bench_flywheel's held rollout


def test_the_plain_point_is_unchanged_and_the_salt_reshuffles():
    digest = hashlib.sha256(b"r000002-m\x00cart-1").digest()
    assert cohort_point("cart-1", "r000002-m") == int.from_bytes(digest[:8], "big") / 2**64 * 100.0
    assert cohort_point("cart-1", "r000002-m", 0) == cohort_point("cart-1", "r000002-m")
    assert cohort_point("cart-1", "r000002-m", 1) != cohort_point("cart-1", "r000002-m")


def test_the_salt_evens_a_small_fleets_canary():
    assert sum(cohort_point(d, EMPTY_CANARY) < 50 for d in CARTS) == 0  # the plain point: none
    salt = cohort_salt(CARTS, EMPTY_CANARY, 50.0)
    assert salt > 0 and sum(cohort_point(d, EMPTY_CANARY, salt) < 50 for d in CARTS) == 2
    for pct, n in ((5.0, 1), (25.0, 1), (50.0, 2), (75.0, 3), (99.0, 3)):  # one or more, never all
        assert wanted_size(4, pct) == n
        s = cohort_salt(CARTS, "r000009-m", pct)
        assert sum(cohort_point(d, "r000009-m", s) < pct for d in CARTS) == n
    fleet = [f"cart-{i:03d}" for i in range(40)]
    s = cohort_salt(fleet, "r000004-m", 30.0)
    assert sum(cohort_point(d, "r000004-m", s) < 30 for d in fleet) == 12
    # nothing to even: full / empty stages, fewer than two devices; an already even split keeps 0
    assert cohort_salt(CARTS, EMPTY_CANARY, 100.0) == cohort_salt(CARTS, EMPTY_CANARY, 0.0) == 0
    assert cohort_salt(CARTS[:1], EMPTY_CANARY, 50.0) == cohort_salt([], EMPTY_CANARY, 50.0) == 0
    even = next(r for r in (f"r{i:06d}-m" for i in range(100))
                if sum(cohort_point(d, r) < 50 for d in CARTS) == 2)
    assert cohort_salt(CARTS, even, 50.0) == 0


def test_a_salt_of_0_is_not_written_and_a_negative_one_is_refused():
    plain = RolloutStage(stage="canary", percent=50)
    assert "cohort_salt" not in dump_document(plain).decode()
    salted = RolloutStage(stage="canary", percent=50, cohort_salt=7)
    assert RolloutStage.model_validate_json(dump_document(salted)) == salted
    with pytest.raises(ValueError, match="cohort_salt"):
        RolloutStage(stage="canary", percent=50, cohort_salt=-1)


def test_devices_follow_the_salted_cohorts_through_the_stages(repo, trusted_root, tmp_path):
    """The real updater on each cart: exactly the salted canary installs, and the ramp keeps it."""
    full = publish_release(repo, "cls-good", release_files(1, "m-good"),
                           RolloutStage(stage="full", percent=100))
    assert "cohort_salt" not in dump_document(full).decode()
    carts = []
    for name in CARTS:
        d = SimDevice(name, tmp_path / name)
        d.install_factory()
        carts.append(d)
    cand = publish_release(repo, "cls-cand", release_files(2, "m-cand"),
                           RolloutStage(stage="canary", percent=50), fleet=CARTS)
    salt = cand.rollout.cohort_salt
    canary = {d for d in CARTS if cohort_point(d, cand.release.release_id, salt) < 50}
    assert len(canary) == 2
    assert parse_release_channel(dump_document(current_channel(repo))) == cand  # signed as chosen

    def running() -> set[str]:
        for d in carts:
            up = d.updater(repo.lake, repo.channel, trusted_root)
            up.recover()
            if up.check() == "probing":
                up.probe()
        return {d.device_id for d in carts if d.running_version() == "m-cand"}

    assert running() == canary
    ramp = set_rollout(repo, RolloutStage(stage="ramp", percent=75))
    assert ramp.rollout.cohort_salt == salt  # kept: the canary devices stay in the larger stage
    ramped = running()  # the salt evened the canary; a later stage takes whoever its percent covers
    assert canary <= ramped == {d for d in CARTS if cohort_point(d, cand.release.release_id, salt) < 75}


def test_release_model_evens_the_canary_over_the_devices_that_report(local_lake, keys_dir):
    from edge_agent.contract.schemas import LatencyMs, StatusReportV2

    keys = load_keys(keys_dir)
    register_model(local_lake, "cls-a", release_files(1, "m-a"), gate_passed=True)
    release_model(local_lake, keys, "stable", "cls-a")
    for d in CARTS:  # the fleet as the cloud knows it: whoever reported status
        doc = StatusReportV2(device_id=d, store_id="S1", reported_at=datetime.now(UTC), agent_version="t",
                             model_version="m-a", rule_set_version="r1", window_s=60, frames_processed=10,
                             inference_latency_ms=LatencyMs(p50=2.0, p99=5.0))
        local_lake.put(status_key(d, datetime.now(UTC)), dump_document(doc))
    register_model(local_lake, "cls-b", release_files(2, "m-b"), gate_passed=True, production_id="cls-a")
    stages = (("canary", 50.0, 0.0), ("full", 100.0, 0.0))
    out = release_model(local_lake, keys, "stable", "cls-b", stages=stages)
    rid, salt = out.channel.release.release_id, out.channel.rollout.cohort_salt
    assert sum(cohort_point(d, rid, salt) < 50 for d in CARTS) == 2
    # a plan that starts in shadow evens its first canary (5 % of 4 carts: one)
    register_model(local_lake, "cls-c", release_files(3, "m-c"), gate_passed=True, production_id="cls-a")
    out = release_model(local_lake, keys, "stable", "cls-c")
    rid, salt = out.channel.release.release_id, out.channel.rollout.cohort_salt
    assert out.channel.rollout.stage == "shadow"
    assert sum(cohort_point(d, rid, salt) < 5 for d in CARTS) == 1
    assert open_channel(local_lake, "stable", keys, create=False) is not None
    with pytest.raises(ContractError):
        parse_release_channel(b"{}")
