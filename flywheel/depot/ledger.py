"""What each ingested clip was ingested AS: its key, its bytes' hash and its sidecar, per day.

"Already ingested" must mean the same clip under the same key with the same sidecar, not merely
the same clip id: a sidecar replaced after ingest, or the same clip bytes landed by a second device,
is a conflict to record, never a silent skip. One JSON object per day
(`depot/ledger/date=D/clips.json`), rewritten with the frames by each run that adds clips. The
sidecar's listing stamp (size, etag, mtime) lets a re-run tell "unchanged" from a listing alone;
only a changed stamp costs a read and a hash.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass

from edge_agent.contract.layout import validate_date
from edge_agent.lake import Lake, ObjectInfo, ObjectNotFound
from flywheel.depot.config import DEPOT


@dataclass(frozen=True)
class LedgerEntry:
    clip_key: str
    clip_sha256: str
    sidecar_sha256: str
    sidecar: str  # the ingested sidecar's bytes (UTF-8, surrogateescape), so a conflict keeps both
    sidecar_stamp: str  # size, etag and mtime of the sidecar object as listed at ingest


def ledger_key(day: str) -> str:
    return f"{DEPOT}/ledger/date={validate_date(day)}/clips.json"


def stamp(info: ObjectInfo | None) -> str:
    if info is None:
        return ""
    return f"{info.size}:{info.etag or ''}:{info.last_modified.timestamp():.6f}"


def sha256_hex(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def read_ledger(lake: Lake, day: str) -> dict[str, LedgerEntry]:
    """clip id -> entry; empty for a day ingested before the ledger existed."""
    try:
        doc = json.loads(lake.get(ledger_key(day)))
    except ObjectNotFound:
        return {}
    return {clip_id: LedgerEntry(**e) for clip_id, e in doc.items()}


def write_ledger(lake: Lake, day: str, entries: dict[str, LedgerEntry]) -> None:
    doc = {k: asdict(entries[k]) for k in sorted(entries)}
    lake.put(ledger_key(day), json.dumps(doc, separators=(",", ":")).encode())
