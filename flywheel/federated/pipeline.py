"""A federated round as one plain function (the Dagster asset `federated_round` is a thin call).

    production head -> Flower round (select, fit on devices, check, FedAvg) -> candidate model

With a channel repository the round is first announced there (signed, flywheel.federated.announce):
devices join only announced rounds, over TLS with a CA made for the round (flywheel.federated.tls)
whose certificate the announcement carries, and only devices registered in the fleet
(flywheel.federated.devices) take part. The candidate then goes where every candidate goes:
`evaluate_candidate` and the gate (flywheel.learner.pipeline), then `release_model`
(flywheel.release.stage) into the TUF channel.
A skipped round (too few devices, too few valid updates, no production model) registers nothing
and says why.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

from edge_agent.lake import Lake
from flywheel.federated.strategy import RoundConfig, RoundReport
from flywheel.learner import registry
from flywheel.release.repository import ChannelRepository


@dataclass
class RoundOutcome:
    base_model: str | None
    report: RoundReport = field(default_factory=RoundReport)
    candidate_id: str | None = None  # None: the round was skipped (report.skipped says why)
    round_id: int = 0  # the signed announcement's round id (0: not announced)

    @property
    def skipped(self) -> str:
        return self.report.skipped


def federated_round(lake: Lake, address: str, cfg: RoundConfig | None = None, *,
                    repo: ChannelRepository | None = None, announce_as: str = "", **overrides
                    ) -> RoundOutcome:
    """Run one round over production's head on `address`; register the candidate it yields.
    `cfg.base_model` is filled with the production model (overrides: RoundConfig fields). With
    `repo` the round is announced in that channel first, naming `announce_as` (default: `address`)
    as the server devices connect to."""
    from flywheel.federated.candidate import base_head, embedding_space_of, register_candidate
    from flywheel.federated.devices import registered_key
    from flywheel.federated.server import run_round

    production = registry.production_model_id(lake)
    if production is None:
        return RoundOutcome(None, RoundReport(skipped="no production model: nothing to adapt"))
    cfg = replace(cfg or RoundConfig(base_model=production), base_model=production,
                  embedding_space=embedding_space_of(lake, production), **overrides)
    w0, b0 = base_head(lake, production)
    certificates = None
    if repo is not None:
        from flywheel.federated.announce import announce_round
        from flywheel.federated.tls import round_certificates

        open_s = cfg.connect_window_s + cfg.fit_timeout_s + 60.0
        tls = round_certificates(announce_as or address, open_s)
        ann = announce_round(repo, server=announce_as or address, base_model=production, w0=w0, b0=b0,
                             cohorts=cfg.cohorts, open_s=open_s, tls_ca=tls.ca_pem)
        cfg, certificates = replace(cfg, round_id=ann.round_id), tls.certificates
    head, report = run_round(address, cfg, w0, b0, certificates=certificates,
                             key_of=lambda device: registered_key(lake, device))
    outcome = RoundOutcome(production, report, round_id=cfg.round_id)
    if head is None:
        return outcome
    summary = {"base_model": production, "round_id": cfg.round_id, "devices": report.accepted,
               "samples": report.samples, "rejected": report.rejected, "failures": report.failures,
               "clipped": report.clipped}
    outcome.candidate_id = register_candidate(lake, production, head[0], head[1], summary).model_id
    return outcome
