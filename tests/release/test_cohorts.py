"""A small fleet's canary is never empty (or the whole fleet) by chance: when the plain point would
do that to the devices that report, the release's cohort salt splits them as the stage asks; devices
compute the same cohorts through the real updater, and a salt of 0 is the plain point (channels
written before the salt read and place devices as before)."""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime

import pytest

from edge_agent.contract.layout import status_key
from edge_agent.contract.release import RolloutStage, cohort_point, parse_release_channel
from edge_agent.contract.schemas import dump_document
from flywheel.release.cohorts import cohort_salt, wanted_size
from flywheel.release.keys import load_keys
from flywheel.release.publish import current_channel, publish_release, release_id, set_rollout
from flywheel.release.repository import open_channel
from flywheel.release.stage import release_model
from tests.support.ota import SimDevice, register_model, release_files

CARTS = ["cart-A-000", "cart-B-001", "cart-C-002", "cart-A-003"]
EMPTY_CANARY = "r000003-cls-20261203T152341-3890ad54"  # bench_flywheel's held rollout


def carts_outside(release: str, percent: float, n: int = 4) -> list[str]:
    """`n` cart ids none of which the plain point puts in a stage of `percent` of `release`."""
    return [c for c in (f"cart-{i:04d}" for i in range(1000)) if cohort_point(c, release) >= percent][:n]


def test_the_plain_point_is_unchanged_and_the_salt_reshuffles():
    digest = hashlib.sha256(b"r000002-m\x00cart-1").digest()
    assert cohort_point("cart-1", "r000002-m") == int.from_bytes(digest[:8], "big") / 2**64 * 100.0
    assert cohort_point("cart-1", "r000002-m", 0) == cohort_point("cart-1", "r000002-m")
    assert cohort_point("cart-1", "r000002-m", 1) != cohort_point("cart-1", "r000002-m")


def test_the_salt_fills_a_small_fleets_empty_canary():
    assert sum(cohort_point(d, EMPTY_CANARY) < 50 for d in CARTS) == 0  # the plain point: none
    salt = cohort_salt(CARTS, EMPTY_CANARY, 50.0)
    assert salt > 0 and sum(cohort_point(d, EMPTY_CANARY, salt) < 50 for d in CARTS) == 2
    for pct, n in ((5.0, 1), (25.0, 1), (50.0, 2), (75.0, 3), (99.0, 3)):  # one or more, never all
        assert wanted_size(4, pct) == n
        for rid in (f"r{i:06d}-m" for i in range(40)):
            s = cohort_salt(CARTS, rid, pct)
            inside = sum(cohort_point(d, rid, s) < pct for d in CARTS)
            assert 0 < inside < len(CARTS) and (s == 0 or inside == n)
    fleet = [f"cart-{i:03d}" for i in range(40)]
    assert cohort_salt(fleet, "r000004-m", 30.0) == 0  # a plain split with both cohorts: kept
    everyone = next(r for r in (f"r{i:06d}-m" for i in range(10000))
                    if all(cohort_point(d, r) < 90 for d in CARTS))
    s = cohort_salt(CARTS, everyone, 90.0)  # a canary of the whole fleet leaves no control
    assert s > 0 and sum(cohort_point(d, everyone, s) < 90 for d in CARTS) == 3
    # nothing to fill: full / empty stages, fewer than two devices
    assert cohort_salt(CARTS, EMPTY_CANARY, 100.0) == cohort_salt(CARTS, EMPTY_CANARY, 0.0) == 0
    assert cohort_salt(CARTS[:1], EMPTY_CANARY, 50.0) == cohort_salt([], EMPTY_CANARY, 50.0) == 0
    uneven = next(r for r in (f"r{i:06d}-m" for i in range(100))
                  if sum(cohort_point(d, r) < 50 for d in CARTS) == 1)
    assert cohort_salt(CARTS, uneven, 50.0) == 0  # one canary of four: both cohorts report


def test_a_salt_of_0_is_not_written_and_a_bad_one_is_refused():
    plain = RolloutStage(stage="canary", percent=50)
    assert "cohort_salt" not in dump_document(plain).decode()
    salted = RolloutStage(stage="canary", percent=50, cohort_salt=7)
    assert RolloutStage.model_validate_json(dump_document(salted)) == salted
    for bad in (-1, 2**32, True, "3", 1.5, None):  # signed by the cloud, still checked like any field
        with pytest.raises(ValueError, match="cohort_salt"):
            RolloutStage(stage="canary", percent=50, cohort_salt=bad)


def test_devices_follow_the_salted_cohorts_through_the_stages(repo, trusted_root, tmp_path):
    """The real updater on each cart: exactly the salted canary installs, and the ramp keeps it."""
    full = publish_release(repo, "cls-good", release_files(1, "m-good"),
                           RolloutStage(stage="full", percent=100))
    assert "cohort_salt" not in dump_document(full).decode()
    fleet = carts_outside(release_id(repo.targets.signed.version + 1, "cls-cand"), 50.0)
    carts = []
    for name in fleet:
        d = SimDevice(name, tmp_path / name)
        d.install_factory()
        carts.append(d)
    cand = publish_release(repo, "cls-cand", release_files(2, "m-cand"),
                           RolloutStage(stage="canary", percent=50), fleet=fleet)
    salt = cand.rollout.cohort_salt  # the plain point would have left the canary empty
    canary = {d for d in fleet if cohort_point(d, cand.release.release_id, salt) < 50}
    assert salt > 0 and len(canary) == 2
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
    ramped = running()  # the salt filled the canary; a later stage takes whoever its percent covers
    assert canary <= ramped == {d for d in fleet if cohort_point(d, cand.release.release_id, salt) < 75}


def test_release_model_fills_the_canary_from_the_devices_that_report(local_lake, keys_dir):
    from edge_agent.contract.schemas import LatencyMs, StatusReportV2

    keys = load_keys(keys_dir)
    register_model(local_lake, "cls-a", release_files(1, "m-a"), gate_passed=True)
    release_model(local_lake, keys, "stable", "cls-a")
    seq = open_channel(local_lake, "stable", keys, create=False).targets.signed.version + 1
    rid_b, rid_c = release_id(seq, "cls-b"), release_id(seq + 1, "cls-c")
    # the fleet as the cloud knows it (whoever reported status): carts the plain point would leave
    # out of both releases' canaries
    fleet = [c for c in carts_outside(rid_b, 50.0, 1000) if cohort_point(c, rid_c) >= 5.0][:4]
    for d in fleet:
        doc = StatusReportV2(device_id=d, store_id="S1", reported_at=datetime.now(UTC), agent_version="t",
                             model_version="m-a", rule_set_version="r1", window_s=60, frames_processed=10,
                             inference_latency_ms=LatencyMs(p50=2.0, p99=5.0))
        local_lake.put(status_key(d, datetime.now(UTC)), dump_document(doc))
    register_model(local_lake, "cls-b", release_files(2, "m-b"), gate_passed=True, production_id="cls-a")
    stages = (("canary", 50.0, 0.0), ("full", 100.0, 0.0))
    out = release_model(local_lake, keys, "stable", "cls-b", stages=stages)
    rollout = out.channel.rollout
    assert out.channel.release.release_id == rid_b and rollout.cohort_salt > 0
    assert sum(cohort_point(d, rid_b, rollout.cohort_salt) < 50 for d in fleet) == 2
    # a plan that starts in shadow fills its first canary (5 % of 4 carts: one)
    register_model(local_lake, "cls-c", release_files(3, "m-c"), gate_passed=True, production_id="cls-a")
    out = release_model(local_lake, keys, "stable", "cls-c")
    rollout = out.channel.rollout
    assert out.channel.release.release_id == rid_c and rollout.stage == "shadow"
    assert sum(cohort_point(d, rid_c, rollout.cohort_salt) < 5 for d in fleet) == 1


def test_cli_publish_fills_the_canary_from_the_devices_that_report(tmp_path, keys_dir):
    """`flywheel release publish --stage canary` salts as the Release stage does (it once did not)."""
    from edge_agent.contract.schemas import LatencyMs, StatusReportV2
    from edge_agent.lake import Lake
    from flywheel.cli import main

    lake_dir = tmp_path / "lake"
    lake = Lake.at_path(lake_dir)
    common = ["--lake", str(lake_dir), "--channel", "stable", "--keys", str(keys_dir)]
    assert main(["release", "init", *common]) == 0
    register_model(lake, "cls-a", release_files(1, "m-a"))
    assert main(["release", "publish", *common, "--model-id", "cls-a"]) == 0
    repo = open_channel(lake, "stable", load_keys(keys_dir), create=False)
    rid = release_id(repo.targets.signed.version + 1, "cls-b")
    fleet = carts_outside(rid, 50.0)
    for d in fleet:
        doc = StatusReportV2(device_id=d, store_id="S1", reported_at=datetime.now(UTC), agent_version="t",
                             model_version="m-a", rule_set_version="r1", window_s=60, frames_processed=10,
                             inference_latency_ms=LatencyMs(p50=2.0, p99=5.0))
        lake.put(status_key(d, datetime.now(UTC)), dump_document(doc))
    register_model(lake, "cls-b", release_files(2, "m-b"), production_id="cls-a")
    assert main(["release", "publish", *common, "--model-id", "cls-b", "--stage", "canary",
                 "--percent", "50"]) == 0
    channel = current_channel(open_channel(lake, "stable", load_keys(keys_dir), create=False))
    assert channel.release.release_id == rid and channel.rollout.cohort_salt > 0
    assert sum(cohort_point(d, rid, channel.rollout.cohort_salt) < 50 for d in fleet) == 2
