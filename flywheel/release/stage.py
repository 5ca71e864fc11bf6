"""The release stage's domain functions (the Dagster asset and sensor are thin over these).

`release_model` signs the exact model its gate judged into the channel: the gate decision recorded
for THAT model id is re-checked (passed, and judged on that very candidate), then the model's files
become targets and the rollout starts at the first stage (straight to full when the channel has
nothing to compare with). `models/production.json` moves only here, when a release reaches full.
"""

from __future__ import annotations

from dataclasses import dataclass

from edge_agent.contract.release import ReleaseChannelV1, RolloutStage
from edge_agent.lake import Lake
from flywheel.depot.fleet_rollup import list_devices
from flywheel.release.health import DEFAULT_STAGES
from flywheel.release.keys import ReleaseKeys
from flywheel.release.publish import current_channel, publish_release, registry_files
from flywheel.release.repository import ChannelRepository, ExpiryConfig, open_channel


class ReleaseRefused(Exception):
    """The model may not be released (gate failed, or judged another model)."""


@dataclass
class ReleaseOutcome:
    channel: ReleaseChannelV1
    published: bool  # False when this exact model was already the channel's release
    production_moved: bool
    gate: dict


def recheck_gate(lake: Lake, model_id: str) -> dict:
    """The gate decision stored for `model_id` must exist, have passed, name that model, and have
    been taken against the production model that is production now."""
    from flywheel.learner import registry
    from flywheel.learner.errors import RegistryError

    try:
        gate = registry.read_gate(lake, model_id)
        registry.read_card(lake, model_id)
    except (RegistryError, KeyError) as e:
        raise ReleaseRefused(f"model {model_id}: no gate decision or card to re-check ({e})") from None
    if gate.candidate_id != model_id:
        raise ReleaseRefused(f"model {model_id}: its gate decision judged {gate.candidate_id}")
    if not gate.passed:
        raise ReleaseRefused(f"model {model_id} failed its gate: {'; '.join(gate.reasons)}")
    production = registry.production_model_id(lake)
    if gate.production_id != production:
        raise ReleaseRefused(f"model {model_id}: gated against production {gate.production_id}, "
                             f"but production is now {production}; re-run the gate")
    return gate.model_dump(mode="json")


def release_model(lake: Lake, keys: ReleaseKeys, channel: str, model_id: str,
                  expiry: ExpiryConfig | None = None, stages=DEFAULT_STAGES) -> ReleaseOutcome:
    repo = open_channel(lake, channel, keys, expiry)
    current = current_channel(repo)
    if current is not None and current.release.model_id == model_id and \
            current.rollout.stage not in ("halted", "rolled_back"):
        return ReleaseOutcome(current, False, False, {"already_released": current.release.release_id})
    gate = recheck_gate(lake, model_id)
    first = current is None
    stage, pct, shadow = ("full", 100.0, 0.0) if first else stages[0]
    published = publish_release(repo, model_id, registry_files(lake, model_id),
                                 RolloutStage(stage=stage, percent=pct, shadow_percent=shadow),
                                 fleet=list_devices(lake),
                                 split_at=next((p for _, p, _ in stages if 0.0 < p < 100.0), None))
    moved = promote_if_full(lake, published)
    return ReleaseOutcome(published, True, moved, gate)


def promote_if_full(lake: Lake, channel: ReleaseChannelV1) -> bool:
    """Move models/production.json to the channel's release once it runs on 100 % of devices."""
    from flywheel.learner import registry

    if channel.rollout.stage != "full" or channel.rollout.percent < 100.0:
        return False
    if registry.production_model_id(lake) == channel.release.model_id:
        return False
    registry.set_production(lake, channel.release.model_id, by="release",
                            reason=f"{channel.release.release_id} reached 100% of channel "
                                   f"{channel.channel}")
    return True


def refresh_timestamp(repo: ChannelRepository) -> int:
    return repo.refresh_timestamp()
