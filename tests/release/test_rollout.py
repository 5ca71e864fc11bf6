"""Staged rollout through the real updater on every device: cohorts from signed metadata, the health
gate's statistical test, and (14) a canary worse on barcode agreement halts and rolls the fleet back
to the last good model, republished as a higher release."""

from __future__ import annotations

import math
from datetime import UTC, datetime

import pytest

from edge_agent.contract.layout import status_key
from edge_agent.contract.release import RolloutStage, cohort_point
from edge_agent.contract.schemas import (
    HealthFigures,
    LatencyMs,
    StatusReportV2,
    dump_document,
    parse_status_report,
)
from flywheel.release.health import GateConfig, worse_p_value
from flywheel.release.publish import current_channel, publish_release
from flywheel.release.rollout import read_reports, step
from tests.support.ota import SimDevice, release_files

STAGES = (("canary", 30.0, 0.0), ("ramp", 60.0, 0.0), ("full", 100.0, 0.0))
GATE = GateConfig(min_barcode_checks=100, min_frames=1000)


def test_worse_p_value_is_the_one_sided_pooled_z_test():
    # 30/100 vs 10/100 bad: z = 0.2 / sqrt(0.2*0.8*0.02) = 3.536 -> p = 2.03e-4
    p = worse_p_value(30, 100, 10, 100)
    assert math.isclose(p, 0.5 * math.erfc(3.5355 / math.sqrt(2)), rel_tol=1e-3)
    assert worse_p_value(10, 100, 30, 100) > 0.99  # better, not worse
    assert worse_p_value(0, 0, 5, 10) == 1.0  # no data: never "significantly worse"


def test_cohort_points_are_uniform_and_deterministic():
    points = [cohort_point(f"cart-{i:04d}", "r000002-m") for i in range(4000)]
    assert points == [cohort_point(f"cart-{i:04d}", "r000002-m") for i in range(4000)]
    share = sum(p < 5.0 for p in points) / len(points)
    assert 0.035 < share < 0.065
    reshuffled = [cohort_point(f"cart-{i:04d}", "r000003-m") for i in range(4000)]
    assert sum((a < 5) and (b < 5) for a, b in zip(points, reshuffled, strict=True)) < 30


def _fleet(repo, trusted_root, tmp_path, n: int) -> list[tuple[SimDevice, object]]:
    fleet = []
    for i in range(n):
        d = SimDevice(f"cart-{i:04d}", tmp_path / f"cart-{i:04d}")
        d.install_factory()
        fleet.append(d)
    return fleet


def _check_all(repo, trusted_root, fleet) -> dict[str, str]:
    out = {}
    for d in fleet:
        up = d.updater(repo.lake, repo.channel, trusted_root)
        up.recover()
        state = up.check()
        if state == "probing":
            state = up.probe()
        out[d.device_id] = state
    return out


def _report(repo, d: SimDevice, agree: int, checked: int = 60) -> None:
    up = d.updater(repo.lake, repo.channel, b"")  # reads the persisted state only
    doc = StatusReportV2(device_id=d.device_id, store_id="S1", reported_at=datetime.now(UTC),
                         agent_version="t", model_version=d.running_version(), rule_set_version="r1",
                         window_s=600, frames_processed=2000,
                         inference_latency_ms=LatencyMs(p50=2.0, p99=5.0), ota=up.status(),
                         health=HealthFigures(predictions=checked, barcode_checked=checked,
                                              barcode_agree=agree))
    repo.lake.put(status_key(d.device_id, datetime.now(UTC)), dump_document(doc))


@pytest.mark.slow
@pytest.mark.parametrize("canary_agree", [57, 30], ids=["healthy", "worse_on_barcodes"])
def test_14_canary_gate_advances_or_halts_and_rolls_back(repo, trusted_root, tmp_path, canary_agree):
    full = RolloutStage(stage="full", percent=100)
    good = publish_release(repo, "cls-good", release_files(1, "m-good"), full)
    fleet = _fleet(repo, trusted_root, tmp_path, 12)
    assert set(_check_all(repo, trusted_root, fleet).values()) == {"active"}
    cand = publish_release(repo, "cls-cand", release_files(2, "m-cand"),
                           RolloutStage(stage="canary", percent=30))
    assert cand.previous.release_id == good.release.release_id
    _check_all(repo, trusted_root, fleet)
    canary = {d.device_id for d in fleet if cohort_point(d.device_id, cand.release.release_id) < 30}
    assert 0 < len(canary) < len(fleet)
    assert {d.device_id for d in fleet if d.running_version() == "m-cand"} == canary
    for d in fleet:  # control agrees 57/60 with the barcode; the canary as parametrised
        _report(repo, d, canary_agree if d.device_id in canary else 57)
    batch = read_reports(repo.lake)
    assert len(batch.reports) == len(fleet) and not batch.rejected
    assert parse_status_report(repo.lake.get(batch.cursor)).schema_version == 2
    result = step(repo, batch.reports, GATE, STAGES)
    checks = {c.name: c for c in result.decision.checks}
    if canary_agree == 57:
        assert result.decision.action == "advance", result.decision.reasons
        assert (result.after.rollout.stage, result.after.rollout.percent) == ("ramp", 60.0)
        assert checks["barcode_disagreement"].passed is True
        return
    assert result.decision.action == "halt"
    assert checks["barcode_disagreement"].passed is False
    assert checks["barcode_disagreement"].actual > checks["barcode_disagreement"].threshold
    rolled = current_channel(repo)
    assert rolled.release.model_id == "cls-good" and rolled.rollout.stage == "full"
    assert rolled.sequence > cand.sequence  # a new, higher release, not a pointer moved back
    states = _check_all(repo, trusted_root, fleet)
    assert set(states.values()) == {"active"}
    assert {d.running_version() for d in fleet} == {"m-good"}  # every device, a working model


def test_rollout_stages_from_config():
    from flywheel.release.health import DEFAULT_STAGES, parse_stages

    assert parse_stages(["shadow:0:10", "canary:5", "ramp:25", "ramp:50", "full:100"]) == DEFAULT_STAGES
    assert parse_stages(["canary:1", "full:100"]) == (("canary", 1.0, 0.0), ("full", 100.0, 0.0))
    for bad, why in ((["canary:50", "ramp:25", "full:100"], "goes down"), (["canary:5"], "end with"),
                     (["canary"], "expected"), (["blue:5", "full:100"], "stage must be")):
        with pytest.raises(ValueError, match=why):
            parse_stages(bad)
