"""The release channel document: the signed TUF target `channel.json` every device reads first.

It names the release the channel ships, the release devices outside the rollout keep (or return
to), the rollout stage, and the trigger rule set. Its bytes are verified by python-tuf before this
parser sees them; devices compute their cohort from it with `cohort_point`, the same function the
cloud uses to count cohorts, so both sides agree on who is in which stage without a device list.
A small fleet's canary can be empty by chance (50 % of 4 carts: one release in 16): the cloud then
picks the release's `cohort_salt` so that the devices it knows split as asked.
"""

from __future__ import annotations

import hashlib
from typing import Annotated, Any, Literal

from pydantic import Field, SerializerFunctionWrapHandler, model_serializer, model_validator

from edge_agent.contract.schemas import _REGISTRY, SafeId, UtcTime, _Doc, _load_json, parse_document

CHANNEL_TARGET = "channel.json"
# The files a device slot needs, by role: target paths are "<release_id>/<name>".
RELEASE_FILES = ("model.onnx", "model.json", "golden.npz")
Percent = Annotated[float, Field(ge=0.0, le=100.0)]


class ReleaseRef(_Doc):
    release_id: SafeId  # unique and increasing per channel: "r000007-<model_id>"
    model_id: SafeId
    model_version: SafeId  # what model.json in the slot says (the device reports it)
    files: dict[str, str]  # role ("model.onnx", "model.json", "golden.npz") -> TUF target path

    @model_validator(mode="after")
    def _complete(self) -> ReleaseRef:
        missing = [f for f in RELEASE_FILES if f not in self.files]
        if missing:
            raise ValueError(f"files lacks {missing}")
        return self


class RolloutStage(_Doc):
    stage: Literal["shadow", "canary", "ramp", "full", "halted", "rolled_back"]
    percent: Percent  # devices with cohort_point < percent install `release`
    shadow_percent: Percent = 0.0  # devices with cohort_point >= 100 - shadow_percent run it in shadow
    # reshuffles every device's cohort_point for this release; fixed when the release is published
    # (flywheel.release.cohorts.cohort_salt), kept through its stages. 0: the plain point
    cohort_salt: Annotated[int, Field(strict=True, ge=0, lt=2**32)] = 0  # an int, never a bool or "3"

    @model_serializer(mode="wrap")
    def _plain_without_salt(self, handler: SerializerFunctionWrapHandler) -> dict[str, Any]:
        # a salt of 0 is not written: the document reads as before, on agents that predate it
        out = handler(self)
        if not self.cohort_salt:
            out.pop("cohort_salt", None)
        return out


class ReleaseChannelV1(_Doc):
    schema_: Literal["flywheel.release_channel"] = Field("flywheel.release_channel", alias="schema")
    schema_version: Literal[1] = 1
    channel: SafeId
    sequence: Annotated[int, Field(ge=1)]  # the targets version that published it
    published_at: UtcTime
    release: ReleaseRef  # the candidate being rolled out (or the full release)
    previous: ReleaseRef | None = None  # what devices outside the cohort run; None: keep theirs
    rollout: RolloutStage
    rule_set: str | None = None  # TUF target path of the trigger rule set, if one ships

    model_config = {"populate_by_name": True}


_REGISTRY["flywheel.release_channel"] = {1: ReleaseChannelV1}


def cohort_point(device_id: str, release_id: str, salt: int = 0) -> float:
    """A device's deterministic place in [0, 100) for one release: uniform over devices, and
    reshuffled per release (and per `salt`) so the same carts are not always the canaries."""
    key = f"{release_id}\x00{device_id}" if not salt else f"{release_id}\x00{salt}\x00{device_id}"
    h = hashlib.sha256(key.encode()).digest()
    return int.from_bytes(h[:8], "big") / 2**64 * 100.0


def assigned(channel: ReleaseChannelV1, device_id: str) -> tuple[ReleaseRef | None, bool]:
    """(the release this device should run, whether it also runs `release` in shadow)."""
    r = channel.rollout
    point = cohort_point(device_id, channel.release.release_id, r.cohort_salt)
    if r.stage in ("halted", "rolled_back"):
        return channel.previous, False
    if point < r.percent:
        return channel.release, False
    shadow = r.shadow_percent > 0 and point >= 100.0 - r.shadow_percent
    return channel.previous, shadow


def parse_release_channel(raw: bytes | str | dict[str, Any]) -> ReleaseChannelV1:
    return parse_document(_load_json(raw), ReleaseChannelV1)
