"""Release assets: the staged rollout judged on fleet health. Thin: flywheel.release does the work.

`release_rollout` adds the status reports that are new since its last run to the current stage's
window (per-device cursors: O(devices + new)), runs the health gate (one-sided two-proportion
z-tests canary vs control with devices as the independent unit, absolute limits, shadow agreement), then
advances the stage, holds, or halts and republishes the last good model. Every gate check is an
asset check with `actual` and `threshold`.
"""

import dagster as dg
from pydantic import Field

from flywheel.defaults import default_of
from flywheel.refs import EvaluationRef, ModelRef
from flywheel.release.health import DEFAULT_STAGE_SPECS as HEALTH_STAGE_SPECS
from flywheel.release.health import GateConfig
from resources.lake import LakeResource
from resources.release import ReleaseSignerResource

GROUP = "release"
GATE_CHECKS = {
    "shadow_agreement": "shadow cohort: candidate top-1 agrees with production (min share)",
    "barcode_disagreement": "canary vs control: top-1 vs barcode disagreement, one-sided z-test + margin",
    "low_confidence": "canary vs control: low-confidence rate, one-sided z-test + margin",
    "weight_inconsistent": "canary vs control: predictions inconsistent with the weight step",
    "insertion_low_confidence": "canary vs control: share of insertions decided with low confidence "
                                "(not judged under min_insertions per cohort)",
    "crashes_per_frame": "canary vs control: crashes per frame, one-sided z-test + margin",
    "restarts_per_frame": "canary vs control: agent restarts per frame, one-sided z-test + margin",
    "inference_p99_ms": "worst canary device inference p99 (absolute limit)",
    "validation_failures": "golden-input validation failures on canary devices (absolute limit)",
}


DEFAULT_STAGE_SPECS = list(HEALTH_STAGE_SPECS)


class ReleaseConfig(dg.Config):
    stages: list[str] = Field(DEFAULT_STAGE_SPECS, description="'stage:percent[:shadow_percent]', "
                                                              "percent never down, ending full:100")


def _gate(name: str, description: str):
    return Field(default_of(GateConfig, name), description=description)


class RolloutConfig(dg.Config):
    stages: list[str] = Field(DEFAULT_STAGE_SPECS, description="the stages the release started with")
    alpha: float = _gate("alpha", "one-sided significance of 'canary worse than control'")
    agreement_margin: float = _gate("agreement_margin", "allowed drop in barcode agreement (abs.)")
    min_barcode_checks: int = _gate("min_barcode_checks", "per cohort before agreement is judged")
    min_frames: int = _gate("min_frames", "per cohort before crash rates are judged")
    insertion_low_conf_margin: float = _gate("insertion_low_conf_margin",
                                             "allowed rise in the share of low-confidence insertions")
    min_insertions: int = _gate("min_insertions", "per cohort before the insertion share is judged")
    max_p99_ms: float = _gate("max_p99_ms", "worst canary device inference p99")
    min_shadow_frames: int = _gate("min_shadow_frames", "shadow frames before the shadow gate judges")
    min_shadow_agreement: float = _gate("min_shadow_agreement", "shadow top-1 == production top-1")
    confidence_yields_to_agreement: bool = _gate(
        "confidence_yields_to_agreement",
        "the confidence checks do not halt a canary that agrees with the barcode reads more often")

    def gate(self) -> GateConfig:
        return GateConfig(alpha=self.alpha, agreement_margin=self.agreement_margin,
                          min_barcode_checks=self.min_barcode_checks, min_frames=self.min_frames,
                          insertion_low_conf_margin=self.insertion_low_conf_margin,
                          min_insertions=self.min_insertions, max_p99_ms=self.max_p99_ms,
                          min_shadow_frames=self.min_shadow_frames,
                          min_shadow_agreement=self.min_shadow_agreement,
                          confidence_yields_to_agreement=self.confidence_yields_to_agreement)


@dg.asset(
    group_name=GROUP,
    check_specs=[dg.AssetCheckSpec("gate_rechecked", asset="release",
                                   description="the release gate, re-run on the exact evaluation and "
                                               "model this release signs")],
    description="Signs the exact candidate its gate judged into the channel's TUF repository "
                "(releases/<channel>/: model, device card, golden inputs as content-addressed "
                "targets; signed channel.json) and starts its rollout at the first stage (a first "
                "release goes to 100%). models/production.json moves only when a release reaches 100%.")
def release(context: dg.AssetExecutionContext, config: ReleaseConfig, lake: LakeResource,
            signer: ReleaseSignerResource, candidate_model: ModelRef,
            candidate_evaluation: EvaluationRef):
    yield from release_candidate(context, config, lake, signer, candidate_model, candidate_evaluation)


def release_candidate(context: dg.AssetExecutionContext, config: ReleaseConfig, lake: LakeResource,
                      signer: ReleaseSignerResource, candidate_model: ModelRef,
                      candidate_evaluation: EvaluationRef):
    """The release path of any candidate (trained, or a federated round's): re-check its gate on
    the exact evaluation, sign it into the channel, start the rollout. Yields the `gate_rechecked`
    check and the materialization of the calling asset."""
    from flywheel.learner.pipeline import gate_candidate
    from flywheel.release.health import parse_stages
    from flywheel.release.stage import ReleaseRefused, release_model

    the_lake = lake.lake()
    if candidate_model.model_id != candidate_evaluation.model_id:
        raise ReleaseRefused(f"the evaluation judged {candidate_evaluation.model_id}, not "
                             f"{candidate_model.model_id}")
    candidate_model.read(the_lake)  # the card is still the one the gate saw (sha256)
    decision = gate_candidate(the_lake, candidate_evaluation)  # re-checked on this very evaluation
    target = next((r for r in decision.rules if r.name == "target_metric"), None)
    yield dg.AssetCheckResult(
        check_name="gate_rechecked", passed=decision.passed, severity=dg.AssetCheckSeverity.ERROR,
        metadata={"candidate": decision.candidate_id, "actual": target.actual if target else None,
                  "threshold": target.threshold if target else None,
                  "reasons": "; ".join(decision.reasons) or "none"})
    if not decision.passed:
        raise ReleaseRefused(f"{decision.candidate_id} failed its gate on re-check: "
                             + "; ".join(decision.reasons))
    out = release_model(the_lake, signer.signers(), signer.channel, candidate_model.model_id,
                        signer.expiry(), parse_stages(config.stages))
    ch = out.channel
    yield dg.MaterializeResult(
        data_version=dg.DataVersion(ch.release.release_id),
        metadata={"channel": ch.channel, "release_id": ch.release.release_id,
                  "model_id": ch.release.model_id, "model_version": ch.release.model_version,
                  "newly_published": out.published, "targets_version": ch.sequence,
                  "stage": f"{ch.rollout.stage} {ch.rollout.percent:g}%"
                           + (f" (+{ch.rollout.shadow_percent:g}% shadow)" if ch.rollout.shadow_percent
                              else ""),
                  "previous": ch.previous.release_id if ch.previous else "none",
                  "production_moved": out.production_moved,
                  "metadata": the_lake.url(f"releases/{ch.channel}/metadata")})


@dg.asset(
    group_name=GROUP, deps=["release"],
    check_specs=[dg.AssetCheckSpec(name, asset="release_rollout", description=d)
                 for name, d in GATE_CHECKS.items()],
    description="The channel's staged rollout (shadow 10% -> canary 5% -> 25% -> 50% -> 100%), judged "
                "on the current stage's status reports: advance, hold, or halt and roll back (the last "
                "good model republished as a new, higher release).")
def release_rollout(context: dg.AssetExecutionContext, config: RolloutConfig, lake: LakeResource,
                    signer: ReleaseSignerResource):
    from flywheel.release.health import parse_stages
    from flywheel.release.publish import current_channel
    from flywheel.release.repository import open_channel
    from flywheel.release.rollout import step
    from flywheel.release.window import update_window

    the_lake = lake.lake()
    repo = open_channel(the_lake, signer.channel, signer.signers(), signer.expiry(), create=False)
    channel = current_channel(repo)
    window = update_window(the_lake, channel) if channel else None  # reads only the new reports
    result = step(repo, window.cohorts if window else [], config.gate(), parse_stages(config.stages))
    by_name = {c.name: c for c in result.decision.checks} if result else {}
    for name in GATE_CHECKS:
        c = by_name.get(name)
        status = "n/a" if c is None else {True: "pass", False: "FAIL", None: "hold"}[c.passed]
        yield dg.AssetCheckResult(
            check_name=name, passed=c is None or c.passed is not False,
            severity=dg.AssetCheckSeverity.ERROR,
            metadata={"actual": c.actual if c else None, "threshold": c.threshold if c else None,
                      "status": status, "detail": c.detail if c else "not judged at this stage"})
    if result is None:
        yield dg.MaterializeResult(metadata={
            "channel": signer.channel, "action": "none",
            "stage": channel.rollout.stage if channel else "no release"})
        return
    d = result.decision
    yield dg.MaterializeResult(
        data_version=dg.DataVersion(f"{result.after.release.release_id}@{result.after.sequence}"),
        metadata={
            "channel": signer.channel, "action": d.action,
            "release": result.before.release.release_id,
            "stage_before": f"{result.before.rollout.stage} {result.before.rollout.percent:g}%",
            "stage_after": f"{result.after.rollout.stage} {result.after.rollout.percent:g}%",
            "now_shipping": result.after.release.release_id,
            "production_moved": result.promoted,
            "canary_devices": len(d.canary.devices), "control_devices": len(d.control.devices),
            "reports_in_window": window.reports, "reports_read_this_run": window.read,
            "reports_rejected": len(window.rejected),
            "reasons": "; ".join(d.reasons) or "none",
            "waiting_for": "; ".join(d.waiting) or "none",
        })
