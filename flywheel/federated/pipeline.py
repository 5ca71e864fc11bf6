"""A federated round as one plain function (the Dagster asset `federated_round` is a thin call).

    production head -> Flower round (select, fit on devices, check, FedAvg) -> candidate model

The candidate then goes where every candidate goes: `evaluate_candidate` and the gate
(flywheel.learner.pipeline), then `release_model` (flywheel.release.stage) into the TUF channel.
A skipped round (too few devices, too few valid updates, no production model) registers nothing
and says why.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

from edge_agent.lake import Lake
from flywheel.federated.strategy import RoundConfig, RoundReport
from flywheel.learner import registry


@dataclass
class RoundOutcome:
    base_model: str | None
    report: RoundReport = field(default_factory=RoundReport)
    candidate_id: str | None = None  # None: the round was skipped (report.skipped says why)

    @property
    def skipped(self) -> str:
        return self.report.skipped


def federated_round(lake: Lake, address: str, cfg: RoundConfig | None = None, **overrides
                    ) -> RoundOutcome:
    """Run one round over production's head on `address`; register the candidate it yields.
    `cfg.base_model` is filled with the production model (overrides: RoundConfig fields)."""
    from flywheel.federated.candidate import base_head, register_candidate
    from flywheel.federated.server import run_round

    production = registry.production_model_id(lake)
    if production is None:
        return RoundOutcome(None, RoundReport(skipped="no production model: nothing to adapt"))
    cfg = replace(cfg or RoundConfig(base_model=production), base_model=production, **overrides)
    w0, b0 = base_head(lake, production)
    head, report = run_round(address, cfg, w0, b0)
    outcome = RoundOutcome(production, report)
    if head is None:
        return outcome
    summary = {"base_model": production, "devices": report.accepted, "samples": report.samples,
               "rejected": report.rejected, "failures": report.failures, "clipped": report.clipped}
    outcome.candidate_id = register_candidate(lake, production, head[0], head[1], summary).model_id
    return outcome
