"""Federated assets (issue 17): a Flower round over the fleet's devices -> a candidate model with the
averaged head -> the same evaluation, blocking gate and TUF release as a trained candidate. Thin:
the work is in `flywheel.federated` (the round) and the Learner/Release domain (the rest)."""

from collections.abc import Iterator

import dagster as dg
from pydantic import Field

from assets.learner import gate_check
from assets.release import ReleaseConfig, release_candidate
from flywheel.defaults import default_of
from flywheel.federated.aggregate import AggregationRules
from flywheel.federated.strategy import RoundConfig
from flywheel.refs import EvaluationRef, ModelRef
from resources.lake import LakeResource
from resources.release import ReleaseSignerResource

GROUP = "federated"


def _round(name: str, description: str):
    return Field(default_of(RoundConfig, name), description=description)


def _agg(name: str, description: str):
    return Field(default_of(AggregationRules, name), description=description)


class FederatedRoundConfig(dg.Config):
    address: str = Field("127.0.0.1:9092", description="host:port the round's Flower server binds")
    announce_as: str = Field("", description="host:port devices connect to, named in the signed round "
                                             "announcement ('' = address)")
    cohorts: list[str] = Field([], description="device cohorts that take part; empty: all")
    min_devices: int = _round("min_devices", "fewer eligible devices or valid updates: skip the round")
    max_devices: int = _round("max_devices", "a larger eligible set is sampled down to this")
    min_samples: int = _round("min_samples", "auto-labelled samples a device needs to be selected")
    connect_window_s: float = _round("connect_window_s", "how long to wait for devices to connect")
    expected_devices: int = _round("expected_devices", "stop waiting once this many are connected")
    fit_timeout_s: float = _round("fit_timeout_s", "a device silent this long has dropped")
    epochs: int = _round("epochs", "local head training epochs on the device")
    lr: float = _round("lr", "local step size (scaled by the feature norm)")
    prox_mu: float = _round("prox_mu", "pull of local training toward the global head")
    prior_adjust: bool = _round("prior_adjust", "devices train on logits + log(local label prior) "
                                                "(label-skewed carts do not make the head forget)")
    max_delta_norm: float = _agg("max_delta_norm", "head change / head norm above this: rejected")
    clip_factor: float = _agg("clip_factor", "changes clipped to this x the median (0: no clipping)")
    max_samples: int = _agg("max_samples", "a claimed sample count above this is rejected")

    def round_config(self) -> RoundConfig:
        return RoundConfig(
            base_model="", cohorts=tuple(self.cohorts), min_devices=self.min_devices,
            max_devices=self.max_devices, min_samples=self.min_samples,
            connect_window_s=self.connect_window_s, expected_devices=self.expected_devices,
            fit_timeout_s=self.fit_timeout_s, epochs=self.epochs, lr=self.lr, prox_mu=self.prox_mu,
            prior_adjust=self.prior_adjust,
            rules=AggregationRules(max_samples=self.max_samples, max_delta_norm=self.max_delta_norm,
                                   clip_factor=self.clip_factor))


@dg.asset(
    group_name=GROUP, io_manager_key="ref_io_manager", output_required=False,
    description="One federated round (Flower, FedAvg weighted by samples, norm-bounded), announced "
                "signed in the release channel: devices in 'updates' mode adapt production's head "
                "on auto-labelled insertions (barcode + weight step) and send only head weights; "
                "the average becomes a candidate model in the registry. A round with too few "
                "devices or valid updates is skipped with the reason.")
def federated_round(context: dg.AssetExecutionContext, config: FederatedRoundConfig,
                    lake: LakeResource, signer: ReleaseSignerResource) -> Iterator[dg.Output[ModelRef]]:
    from flywheel.federated.pipeline import federated_round as run
    from flywheel.learner.pipeline import model_ref
    from flywheel.release.repository import open_channel

    # devices join only a round announced (signed with the release keys) in their channel
    repo = open_channel(lake.lake(), signer.channel, signer.signers(), signer.expiry())
    out = run(lake.lake(), config.address, config.round_config(), repo=repo, announce_as=config.announce_as)
    r = out.report
    metadata = {"base_model": out.base_model or "none", "channel": signer.channel,
                "round_id": out.round_id, "connected": r.connected,
                "selected": len(r.selected), "accepted": len(r.accepted), "samples": r.samples,
                "rejected": r.rejected or "none", "failures": r.failures or "none",
                "excluded": len(r.excluded), "clipped": r.clipped or "none",
                "unauthenticated": r.unauthenticated or "none",
                "seconds": round(r.seconds, 2), "skipped": r.skipped or "no",
                "bytes_per_device": (round(sum(r.bytes_received.values()) / len(r.bytes_received))
                                     if r.bytes_received else 0)}
    if out.candidate_id is None:
        context.log.warning(f"federated round skipped: {r.skipped}")
        context.log_event(dg.AssetObservation(asset_key=context.asset_key, metadata=metadata))
        return
    yield dg.Output(model_ref(lake.lake(), out.candidate_id),
                    data_version=dg.DataVersion(out.candidate_id),
                    metadata={"model_id": out.candidate_id, **metadata})


@dg.asset(group_name=GROUP, io_manager_key="ref_io_manager",
          description="The federated candidate and production on every frozen standard set (the "
                      "Learner's evaluation, unchanged).")
def federated_evaluation(context: dg.AssetExecutionContext, lake: LakeResource,
                         federated_round: ModelRef) -> dg.Output[EvaluationRef]:
    from flywheel.learner.pipeline import evaluate_candidate, evaluation_ref

    ev = evaluate_candidate(lake.lake(), federated_round)
    metrics = {k: (round(v, 4) if isinstance(v, float) else v) for k, v in ev.candidate.metrics.items()}
    return dg.Output(evaluation_ref(lake.lake(), ev.candidate_id),
                     data_version=dg.DataVersion(ev.candidate_id),
                     metadata={"candidate": ev.candidate_id, "production": ev.production_id or "none",
                               **metrics, "report": dg.MetadataValue.md(ev.report_md)})


@dg.asset_check(asset="federated_evaluation", blocking=True,
                description="The release gate, the same rules as for a trained candidate: what "
                            "aggregation let through (a poisoned head) stops here.")
def federated_gate(context: dg.AssetCheckExecutionContext, lake: LakeResource,
                   federated_evaluation: EvaluationRef) -> dg.AssetCheckResult:
    return gate_check(lake, federated_evaluation)


@dg.asset(group_name=GROUP,
          check_specs=[dg.AssetCheckSpec("gate_rechecked", asset="federated_release",
                                         description="the gate re-run on the exact evaluation")],
          description="Signs the federated candidate into the release channel (the same TUF release "
                      "and staged rollout as any candidate).")
def federated_release(context: dg.AssetExecutionContext, config: ReleaseConfig, lake: LakeResource,
                      signer: ReleaseSignerResource, federated_round: ModelRef,
                      federated_evaluation: EvaluationRef):
    yield from release_candidate(context, config, lake, signer, federated_round, federated_evaluation)
