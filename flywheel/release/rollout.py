"""One rollout step: judge the cohorts of the stage's window (`window.update_window`), then advance
the stage, hold, or halt and roll back. The `release_rollout` asset calls `step`; it is plain Python."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

from edge_agent.contract.errors import ContractError
from edge_agent.contract.layout import LANDING_STATUS
from edge_agent.contract.release import ReleaseChannelV1, RolloutStage
from edge_agent.contract.schemas import StatusReportV2, parse_status_report
from edge_agent.lake import Lake
from flywheel.release.health import DEFAULT_STAGES, Cohorts, Decision, GateConfig, judge, next_stage
from flywheel.release.publish import current_channel, rollback_release, set_rollout
from flywheel.release.repository import ChannelRepository
from flywheel.release.stage import promote_if_full


@dataclass
class ReportBatch:
    reports: list[StatusReportV2]
    rejected: list[tuple[str, str]]  # (key, reason): unreadable or invalid reports, skipped
    cursor: str | None  # the last key read (resume after it next time)


def read_reports(lake: Lake, start_after: str | None = None, limit: int | None = None) -> ReportBatch:
    """V2 status reports after the cursor (V1 reports carry no health figures: counted, skipped).
    One listing over every device: for tools and tests; the rollout reads `window.update_window`."""
    reports, rejected, cursor = [], [], start_after
    for info in lake.list(LANDING_STATUS, start_after=start_after, limit=limit):
        cursor = info.key
        try:
            doc = parse_status_report(lake.get(info.key))
        except ContractError as e:
            rejected.append((info.key, str(e)))
            continue
        if isinstance(doc, StatusReportV2):
            reports.append(doc)
        else:
            rejected.append((info.key, "schema_version 1 carries no health figures"))
    return ReportBatch(reports, rejected, cursor)


@dataclass
class StepResult:
    decision: Decision
    before: ReleaseChannelV1
    after: ReleaseChannelV1  # == before when held
    promoted: bool = False  # models/production.json moved to the release (it reached full)


def step(repo: ChannelRepository, reports: list[StatusReportV2] | Cohorts, cfg: GateConfig | None = None,
         stages=DEFAULT_STAGES) -> StepResult | None:
    """Judge the current stage on `reports` (or the window's summed cohorts); None when the channel
    has no release or is done."""
    channel = current_channel(repo)
    if channel is None or channel.rollout.stage in ("full", "halted", "rolled_back"):
        return None
    decision = judge(reports, channel, cfg)
    after = channel
    if decision.action == "halt":
        after = rollback_release(repo)
    elif decision.action == "advance":
        nxt = next_stage(channel, stages)
        if nxt is not None:
            stage, pct, shadow = nxt
            after = set_rollout(repo, RolloutStage(stage=stage, percent=pct, shadow_percent=shadow))
    promoted = promote_if_full(repo.lake, after) if after is not channel and decision.action == "advance" \
        else False
    return StepResult(decision, channel, after, promoted)


def iter_stages(stages=DEFAULT_STAGES) -> Iterator[RolloutStage]:
    for stage, pct, shadow in stages:
        yield RolloutStage(stage=stage, percent=pct, shadow_percent=shadow)
