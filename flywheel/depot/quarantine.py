"""Quarantine: bad input leaves the landing zone for `depot/quarantine/`, with its reason beside it.

`landing/clips/<rest>` moves to `depot/quarantine/clips/<rest>` and a `<rest>.reason.json` names the
reason code (stable, for dashboards), a human detail and when. Moving is copy-then-delete, so a
crash in between leaves a duplicate, never a loss; re-quarantining the same key is harmless.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from datetime import UTC, datetime

from edge_agent.lake import Lake, ObjectNotFound
from flywheel.depot.config import QUARANTINE

# Reason codes (the bad-input matrix of the Depot).
BAD_KEY = "bad_key"  # ids with '..', slashes, or a key outside the landing layout
CLIP_WITHOUT_SIDECAR = "clip_without_sidecar"
SIDECAR_WITHOUT_CLIP = "sidecar_without_clip"
OVERSIZE = "oversize"
BAD_SIDECAR = "bad_sidecar"
UNKNOWN_SCHEMA_VERSION = "unknown_schema_version"
SIDECAR_MISMATCH = "sidecar_key_mismatch"
SIZE_MISMATCH = "size_mismatch"
SHA256_MISMATCH = "sha256_mismatch"
UNDECODABLE = "undecodable"  # truncated or corrupt MP4


@dataclass(frozen=True)
class Rejection:
    key: str  # original landing key (stem + extension)
    reason: str  # one of the codes above
    detail: str
    quarantine_key: str
    at: str


def quarantine_key_for(key: str) -> str:
    rest = key.split("/", 1)[1] if key.startswith("landing/") else key
    return f"{QUARANTINE}/{rest}"


def quarantine(lake: Lake, key: str, reason: str, detail: str, *, now: datetime | None = None
               ) -> Rejection:
    """Move `key` into quarantine and write its reason next to it."""
    target = quarantine_key_for(key)
    rej = Rejection(key=key, reason=reason, detail=detail[:2000], quarantine_key=target,
                    at=(now or datetime.now(UTC)).isoformat())
    lake.put(target + ".reason.json", json.dumps(asdict(rej), indent=1).encode())
    try:
        lake.put(target, lake.get(key))
    except ObjectNotFound:
        return rej  # already moved by an earlier attempt
    lake.delete(key)
    return rej
