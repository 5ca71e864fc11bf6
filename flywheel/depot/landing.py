"""What is new in the landing zone: the sensor's logic, as a pure function over the lake.

Clip keys (`landing/clips/date=D/store=S/device=E/<sha-prefix>.mp4`) sort by content hash, so a new
clip usually lands BEHIND any start-after cursor over `landing/clips/`: a cursor there would miss
most uploads. Devices therefore put an empty marker in the arrival log right after each sidecar
(`edge_agent.contract.layout.arrival_key`: keys sorted by upload time). One tick lists the log
strictly after the cursor's last key, O(new markers) on both lake backends, and decides per clip:

- both parts there -> ready: the clip's capture day gets an ingest run;
- a part missing (a marker before the clip finished, a sidecar without its clip) -> pending, kept
  in the cursor with the time first seen and re-checked by `head` each tick (O(pending), i.e.
  uploads in flight) until complete, gone, or past the timeout -> expired: the day still gets a run,
  whose ingest quarantines what is incomplete.

A device whose clock runs far ahead would drag the cursor into the future and blind the sensor, so
the cursor never moves past markers stamped later than now + `max_clock_skew_s` (they are still
processed; run keys keep the repeats harmless). Clips that never get a marker (a clip whose
sidecar never came, a device that writes none) are found by the daily sweep, which ingests the
whole capture day. Markers that do not parse are returned as `unroutable` for quarantine.
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass, field
from datetime import UTC, datetime

from edge_agent.contract.errors import ContractError
from edge_agent.contract.layout import CLIP_EXT, LANDING_ARRIVALS, SIDECAR_EXT, parse_arrival_key
from edge_agent.lake import Lake
from flywheel.depot.config import DepotConfig

_DAY_RE = re.compile(r"landing/clips/date=(\d{4}-\d{2}-\d{2})/")
PARTS = (CLIP_EXT, SIDECAR_EXT)


@dataclass
class LandingCursor:
    after: str | None = None  # last arrival-log key consumed
    pending: dict[str, float] = field(default_factory=dict)  # clip stem -> first seen (unix seconds)

    def to_json(self) -> str:
        return json.dumps({"after": self.after, "pending": dict(sorted(self.pending.items()))},
                          separators=(",", ":"))

    @classmethod
    def from_json(cls, text: str | None) -> LandingCursor:
        if not text:
            return cls()
        doc = json.loads(text)
        return cls(after=doc.get("after"), pending={k: float(v) for k, v in doc.get("pending", {}).items()})


@dataclass
class LandingScan:
    cursor: LandingCursor
    ready: dict[str, list[str]] = field(default_factory=dict)  # day -> clip stems now complete
    expired: dict[str, list[str]] = field(default_factory=dict)  # day -> stems past the timeout
    unroutable: list[str] = field(default_factory=list)  # arrival keys that do not parse
    listed: int = 0  # keys read by the listing (the O(new) part)
    checked: int = 0  # pending stems re-checked by head

    @property
    def days(self) -> list[str]:
        return sorted(set(self.ready) | set(self.expired))

    def run_key(self, day: str) -> str:
        """Same work -> same key: a re-evaluated tick (restart from an old cursor) is deduplicated."""
        stems = sorted(self.ready.get(day, [])) + ["expired:" + s for s in sorted(self.expired.get(day, []))]
        digest = hashlib.sha256("\n".join(stems).encode()).hexdigest()[:20]
        return f"depot-ingest:{day}:{digest}"


def split_key(key: str) -> tuple[str, str]:
    """(stem, extension) of a landing key; other extensions give ("key", "")."""
    for ext in PARTS:
        if key.endswith(ext):
            return key[: -len(ext)], ext
    return key, ""


def day_of(key: str) -> str | None:
    m = _DAY_RE.match(key)
    return m.group(1) if m else None


def _ts_seconds(ts: str) -> float:
    return datetime.strptime(ts, "%Y%m%dT%H%M%S.%fZ").replace(tzinfo=UTC).timestamp()


def scan_landing(lake: Lake, cursor: LandingCursor, *, now: float, config: DepotConfig | None = None
                 ) -> LandingScan:
    """One sensor tick's decisions and the next cursor. Reads at most `config.max_keys_per_tick`
    new markers (a backlog drains over several ticks)."""
    config = config or DepotConfig()
    pending = dict(cursor.pending)
    scan = LandingScan(cursor=LandingCursor(after=cursor.after, pending=pending))
    new: list[tuple[str, str]] = []  # (day, stem)
    frozen = False  # once a marker is from the future, the cursor stays put (keys are time-ordered)
    for info in lake.list(LANDING_ARRIVALS, start_after=cursor.after, limit=config.max_keys_per_tick):
        scan.listed += 1
        try:
            ts, ck = parse_arrival_key(info.key)
        except ContractError:
            scan.unroutable.append(info.key)
            ts, ck = None, None
        if ts is not None and _ts_seconds(ts) > now + config.max_clock_skew_s:
            frozen = True
        if not frozen:
            scan.cursor.after = info.key
        if ck is not None:
            new.append((ck.date, ck.sidecar_key[: -len(SIDECAR_EXT)]))
    for day, stem in new:
        if stem in pending:
            continue  # re-checked below
        scan.checked += 1
        if all(lake.exists(stem + ext) for ext in PARTS):
            scan.ready.setdefault(day, []).append(stem)
        else:
            pending[stem] = now
    seen_now = {stem for _, stem in new}
    for stem, first_seen in list(pending.items()):
        if stem in seen_now and first_seen == now:
            continue  # just added
        scan.checked += 1
        present = [lake.exists(stem + ext) for ext in PARTS]
        day = day_of(stem) or ""
        if all(present):
            scan.ready.setdefault(day, []).append(stem)
            del pending[stem]
        elif not any(present):  # gone (quarantined or deleted): nothing to wait for
            del pending[stem]
        elif now - first_seen >= config.pending_timeout_s:
            scan.expired.setdefault(day, []).append(stem)
            del pending[stem]
    return scan
