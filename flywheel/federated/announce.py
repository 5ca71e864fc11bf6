"""Announcing a round: the signed `federated/round.json` target in a release channel.

Devices join a round only on this word (edge_agent.federated.announce verifies it with python-tuf
from their trusted root), so it is signed with the release's own online keys through the channel's
TUF repository (flywheel.release.repository): the server address, the base model, the sha256 of the
global head the server will send, the invited cohorts, the round's TLS CA (flywheel.federated.tls),
and an expiry just past the round's windows.
Round ids only go up per channel: a device refuses one it has already joined (replay).
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import numpy as np

from edge_agent.contract.federated import (
    ROUND_TARGET,
    RoundAnnouncementV1,
    head_digest,
    parse_round_announcement,
)
from edge_agent.contract.schemas import dump_document
from flywheel.release.publish import read_target
from flywheel.release.repository import ChannelRepository


def current_announcement(repo: ChannelRepository) -> RoundAnnouncementV1 | None:
    data = read_target(repo, ROUND_TARGET)
    return parse_round_announcement(data) if data else None


def announce_round(repo: ChannelRepository, *, server: str, base_model: str, w0: np.ndarray,
                   b0: np.ndarray, cohorts: tuple[str, ...] = (), open_s: float = 300.0,
                   tls_ca: bytes = b"") -> RoundAnnouncementV1:
    """Sign and publish the next round of the channel; returns the announcement. `tls_ca`: the
    PEM of the CA the round's server certificate chains to (b"": a plaintext round)."""
    if repo.targets is None:
        repo.load()
    last = current_announcement(repo)
    now = datetime.now(UTC).replace(microsecond=0)
    ann = RoundAnnouncementV1(channel=repo.channel, round_id=(last.round_id + 1) if last else 1,
                              server=server, base_model=base_model, head_sha256=head_digest(w0, b0),
                              cohorts=list(cohorts), tls_ca=tls_ca.decode("ascii"), published_at=now,
                              expires_at=now + timedelta(seconds=open_s))
    repo.publish({ROUND_TARGET: dump_document(ann)})
    return ann
