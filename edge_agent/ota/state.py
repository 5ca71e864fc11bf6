"""The updater's persisted state: one JSON file, replaced atomically (temp + fsync + rename), so a
SIGKILL at any point leaves either the previous state or the next one on disk, never half of one."""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path

# idle: nothing installed by OTA yet | downloading | verified: staged + golden-checked in the
# inactive slot | swapping: about to flip `active` | probing | active: committed |
# rolled_back | failed: the last check or install failed (the running model is untouched)
STATES = ("idle", "downloading", "verified", "swapping", "probing", "active", "rolled_back", "failed")


@dataclass
class OtaRecord:
    state: str = "idle"
    release_id: str | None = None  # the release in progress (or last handled)
    target: dict | None = None  # the ReleaseRef being installed, as JSON
    active_release: str | None = None  # the committed release running now (None: factory model)
    target_slot: str | None = None
    previous_slot: str | None = None
    probe_frames: int = 0
    probe_crashes: int = 0
    probe_latencies_ms: list[float] = field(default_factory=list)
    rejected: list[str] = field(default_factory=list)  # releases that failed validation/probation
    rules_applied: str | None = None  # the signed rule set target last written to the rule file
    detail: str = ""
    updated_at: str = ""

    def to_json(self) -> bytes:
        return json.dumps(asdict(self), sort_keys=True).encode()


def load_record(path: Path) -> OtaRecord:
    try:
        raw = json.loads(path.read_bytes())
    except FileNotFoundError:
        return OtaRecord()
    known = {k: v for k, v in raw.items() if k in OtaRecord.__dataclass_fields__}
    rec = OtaRecord(**known)
    if rec.state not in STATES:
        raise ValueError(f"{path}: unknown OTA state {rec.state!r}")
    return rec


def save_record(path: Path, rec: OtaRecord) -> None:
    rec.updated_at = datetime.now(UTC).isoformat()
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    with tmp.open("wb") as f:
        f.write(rec.to_json())
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)
    dir_fd = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(dir_fd)  # the rename itself survives a power cut
    finally:
        os.close(dir_fd)
