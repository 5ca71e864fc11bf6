"""What each ingested clip was ingested AS: its key, its bytes' hash and its sidecar, per day.

"Already ingested" must mean the same clip under the same key with the same sidecar, not merely
the same clip id: a sidecar replaced after ingest, or the same clip bytes landed by a second device,
is a conflict to record, never a silent skip. Per day, `depot/ledger/date=D/clips.json` (small: read
by every run) and `sidecars.json` (the ingested sidecars' bytes: read only on a conflict, so both
versions can be kept), rewritten with the frames by each run that adds clips. The sidecar's listing
stamp (size, etag, mtime) lets a re-run tell "unchanged" from a listing alone; only a changed stamp
costs a read and a hash.
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
    sidecar_stamp: str  # size, etag and mtime of the sidecar object as listed at ingest


def ledger_key(day: str, name: str = "clips.json") -> str:
    return f"{DEPOT}/ledger/date={validate_date(day)}/{name}"


def stamp(info: ObjectInfo | None) -> str:
    if info is None:
        return ""
    return f"{info.size}:{info.etag or ''}:{info.last_modified.timestamp():.6f}"


def sha256_hex(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _read_json(lake: Lake, key: str) -> dict:
    try:
        return json.loads(lake.get(key))
    except ObjectNotFound:
        return {}


def read_ledger(lake: Lake, day: str) -> dict[str, LedgerEntry]:
    """clip id -> entry; empty for a day ingested before the ledger existed."""
    return {clip_id: LedgerEntry(**e) for clip_id, e in _read_json(lake, ledger_key(day)).items()}


def ingested_sidecar(lake: Lake, day: str, clip_id: str) -> bytes | None:
    """The sidecar bytes a clip was ingested with (None before the ledger existed)."""
    text = _read_json(lake, ledger_key(day, "sidecars.json")).get(clip_id)
    return None if text is None else text.encode("utf-8", "surrogateescape")


def write_ledger(lake: Lake, day: str, entries: dict[str, LedgerEntry], sidecars: dict[str, bytes]) -> None:
    """Add `sidecars` (clip id -> the bytes ingested) to the day's copies, then write the entries."""
    kept = _read_json(lake, ledger_key(day, "sidecars.json"))
    kept.update({k: v.decode("utf-8", "surrogateescape") for k, v in sidecars.items()})
    lake.put(ledger_key(day, "sidecars.json"), json.dumps(kept, sort_keys=True).encode())
    doc = {k: asdict(entries[k]) for k in sorted(entries)}
    lake.put(ledger_key(day), json.dumps(doc, separators=(",", ":")).encode())
